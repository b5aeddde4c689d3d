/* Unit tests of daemon/control_parse.c: good and bad control request lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "control.h"

struct pcase {
	const char *name;
	const char *line;
	size_t len;		/* 0: strlen(line) */
	const char *err;	/* expected start of the error; NULL: parses */
	enum control_cmd cmd;
	enum control_dead_action action;
	int64_t id;
	int worker;
};

#define OK(n, l, c) { n, l, 0, NULL, c, 0, 0, 0 }
#define OK_DEAD(n, l, a, i) { n, l, 0, NULL, CONTROL_DEAD_LETTERS, a, i, 0 }
#define OK_FIBERS(n, l, w) { n, l, 0, NULL, CONTROL_FIBERS, 0, 0, w }
#define BAD(n, l, e) { n, l, 0, e, 0, 0, 0, 0 }
/* With bytes past a NUL: the literal's whole length. */
#define BAD_BYTES(n, l, e) { n, l, sizeof(l) - 1, e, 0, 0, 0, 0 }

#define UNKNOWN_ACTION "dead-letters: unknown action (accepted: list, show, retry, drop)"
#define BAD_ID "dead-letters: \"id\" must be an update id"
#define BAD_ID_ALL "dead-letters: \"id\" must be an update id or \"all\""
#define BAD_SLOT "fibers: \"worker\" must be a worker slot number"

static const struct pcase cases[] = {
	OK("status", "{\"v\":1,\"cmd\":\"status\"}", CONTROL_STATUS),
	OK("workers", "{\"v\":1,\"cmd\":\"workers\"}", CONTROL_WORKERS),
	OK("reload", "{\"v\":1,\"cmd\":\"reload\"}", CONTROL_RELOAD),
	OK("pause", "{\"v\":1,\"cmd\":\"pause\"}", CONTROL_PAUSE),
	OK("resume", "{\"v\":1,\"cmd\":\"resume\"}", CONTROL_RESUME),
	OK("members in another order, blanks", " { \"cmd\" : \"status\" , \"v\" : 1 } ",
	    CONTROL_STATUS),
	OK("unknown members ignored", "{\"v\":1,\"cmd\":\"status\",\"x\":[1,{}]}",
	    CONTROL_STATUS),
	OK_DEAD("dead-letters without action", "{\"v\":1,\"cmd\":\"dead-letters\"}",
	    CONTROL_DEAD_LIST, 0),
	OK_DEAD("dead-letters list", "{\"v\":1,\"cmd\":\"dead-letters\",\"action\":\"list\"}",
	    CONTROL_DEAD_LIST, 0),
	OK_DEAD("dead-letters show",
	    "{\"v\":1,\"cmd\":\"dead-letters\",\"action\":\"show\",\"id\":123456789012}",
	    CONTROL_DEAD_SHOW, 123456789012),
	OK_DEAD("dead-letters retry 0",
	    "{\"v\":1,\"cmd\":\"dead-letters\",\"action\":\"retry\",\"id\":0}",
	    CONTROL_DEAD_RETRY, 0),
	OK_DEAD("dead-letters retry all",
	    "{\"v\":1,\"cmd\":\"dead-letters\",\"action\":\"retry\",\"id\":\"all\"}",
	    CONTROL_DEAD_RETRY, STATUS_ALL),
	OK_DEAD("dead-letters drop",
	    "{\"v\":1,\"cmd\":\"dead-letters\",\"action\":\"drop\",\"id\":9223372036854775807}",
	    CONTROL_DEAD_DROP, INT64_MAX),
	OK_DEAD("dead-letters drop all",
	    "{\"v\":1,\"cmd\":\"dead-letters\",\"action\":\"drop\",\"id\":\"all\"}",
	    CONTROL_DEAD_DROP, STATUS_ALL),
	OK_FIBERS("fibers 0", "{\"v\":1,\"cmd\":\"fibers\",\"worker\":0}", 0),
	OK_FIBERS("fibers INT_MAX", "{\"v\":1,\"cmd\":\"fibers\",\"worker\":2147483647}",
	    2147483647),

	BAD("empty line", "", "not JSON: "),
	BAD("not JSON", "status", "not JSON: "),
	BAD("truncated", "{\"v\":1,\"cmd\":\"sta", "not JSON: "),
	BAD("trailing garbage", "{\"v\":1,\"cmd\":\"status\"}]", "not JSON: "),
	BAD("two objects", "{\"v\":1,\"cmd\":\"status\"}{}", "not JSON: "),
	BAD("duplicate member", "{\"v\":1,\"v\":1,\"cmd\":\"status\"}", "not JSON: "),
	BAD_BYTES("NUL byte after", "{\"v\":1,\"cmd\":\"status\"}\0", "not JSON: "),
	BAD_BYTES("NUL in a string", "{\"v\":1,\"cmd\":\"sta\0tus\"}", "not JSON: "),
	BAD("escaped NUL in cmd", "{\"v\":1,\"cmd\":\"status\\u0000x\"}", "not JSON: "),
	BAD("array", "[1,2]", "a request is a JSON object"),
	BAD("string", "\"status\"", "not JSON: "),
	BAD("number", "1", "not JSON: "),
	BAD("no version", "{\"cmd\":\"status\"}", "unsupported protocol version"),
	BAD("version 2", "{\"v\":2,\"cmd\":\"status\"}", "unsupported protocol version"),
	BAD("version as a string", "{\"v\":\"1\",\"cmd\":\"status\"}",
	    "unsupported protocol version"),
	BAD("version 1.0", "{\"v\":1.0,\"cmd\":\"status\"}", "unsupported protocol version"),
	BAD("no cmd", "{\"v\":1}", "\"cmd\" missing or not a string"),
	BAD("cmd not a string", "{\"v\":1,\"cmd\":7}", "\"cmd\" missing or not a string"),
	BAD("unknown cmd", "{\"v\":1,\"cmd\":\"frobnicate\"}", "unknown command (accepted: "),
	BAD("cmd in capitals", "{\"v\":1,\"cmd\":\"STATUS\"}", "unknown command"),
	BAD("cmd with a blank", "{\"v\":1,\"cmd\":\"status \"}", "unknown command"),
	BAD("dead-letters action unknown",
	    "{\"v\":1,\"cmd\":\"dead-letters\",\"action\":\"burn\"}", UNKNOWN_ACTION),
	BAD("dead-letters action not a string",
	    "{\"v\":1,\"cmd\":\"dead-letters\",\"action\":3}", UNKNOWN_ACTION),
	BAD("dead-letters action null",
	    "{\"v\":1,\"cmd\":\"dead-letters\",\"action\":null}", UNKNOWN_ACTION),
	BAD("dead-letters show without id",
	    "{\"v\":1,\"cmd\":\"dead-letters\",\"action\":\"show\"}", BAD_ID),
	BAD("dead-letters show all",
	    "{\"v\":1,\"cmd\":\"dead-letters\",\"action\":\"show\",\"id\":\"all\"}", BAD_ID),
	BAD("dead-letters retry negative",
	    "{\"v\":1,\"cmd\":\"dead-letters\",\"action\":\"retry\",\"id\":-5}", BAD_ID_ALL),
	BAD("dead-letters drop id as a string",
	    "{\"v\":1,\"cmd\":\"dead-letters\",\"action\":\"drop\",\"id\":\"12\"}", BAD_ID_ALL),
	BAD("dead-letters drop id real",
	    "{\"v\":1,\"cmd\":\"dead-letters\",\"action\":\"drop\",\"id\":1.5}", BAD_ID_ALL),
	BAD("dead-letters retry id past 64 bits",
	    "{\"v\":1,\"cmd\":\"dead-letters\",\"action\":\"retry\",\"id\":18446744073709551616}",
	    "not JSON: "),
	BAD("fibers without worker", "{\"v\":1,\"cmd\":\"fibers\"}", BAD_SLOT),
	BAD("fibers negative", "{\"v\":1,\"cmd\":\"fibers\",\"worker\":-1}", BAD_SLOT),
	BAD("fibers past INT_MAX", "{\"v\":1,\"cmd\":\"fibers\",\"worker\":2147483648}", BAD_SLOT),
	BAD("fibers as a string", "{\"v\":1,\"cmd\":\"fibers\",\"worker\":\"0\"}", BAD_SLOT),
};

static void
test_parse_cases(void **state)
{
	struct control_req req;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct pcase *c = &cases[i];
		size_t len = c->len ? c->len : strlen(c->line);
		int r;

		err[0] = '\0';
		r = control_parse(c->line, len, &req, err, sizeof(err));
		if (c->err == NULL) {
			if (r != 0)
				fail_msg("%s: refused: %s", c->name, err);
			if (req.cmd != c->cmd || req.action != c->action || req.id != c->id ||
			    req.worker != c->worker)
				fail_msg("%s: parsed as cmd %d action %d id %lld worker %d",
				    c->name, req.cmd, req.action, (long long)req.id, req.worker);
		} else {
			if (r != -1)
				fail_msg("%s: accepted", c->name);
			if (strncmp(err, c->err, strlen(c->err)) != 0)
				fail_msg("%s: error \"%s\", expected \"%s...\"", c->name, err,
				    c->err);
		}
	}
}

/* A line over CONTROL_MAX_LINE is refused whatever it holds; one at it parses. */
static void
test_line_length(void **state)
{
	static char line[CONTROL_MAX_LINE + 2];
	static const char head[] = "{\"v\":1,\"cmd\":\"status\",\"pad\":\"";
	struct control_req req;
	char err[256];
	size_t n;

	(void)state;
	memset(line, 'y', sizeof(line));
	memcpy(line, head, sizeof(head) - 1);
	n = CONTROL_MAX_LINE;
	memcpy(line + n - 2, "\"}", 2);
	assert_int_equal(control_parse(line, n, &req, err, sizeof(err)), 0);
	assert_int_equal(req.cmd, CONTROL_STATUS);
	n = CONTROL_MAX_LINE + 1;
	memset(line + CONTROL_MAX_LINE - 2, 'y', 2);
	memcpy(line + n - 2, "\"}", 2);
	assert_int_equal(control_parse(line, n, &req, err, sizeof(err)), -1);
	assert_string_equal(err, "request line longer than 8192 bytes");
}

/* The error always fits the caller's buffer, cut if need be. */
static void
test_small_error_buffer(void **state)
{
	struct control_req req;
	char err[8];

	(void)state;
	memset(err, 'z', sizeof(err));
	assert_int_equal(control_parse("{\"v\":1,\"cmd\":\"x\"}", 17, &req, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_cases),
		cmocka_unit_test(test_line_length),
		cmocka_unit_test(test_small_error_buffer),
	};

	return cmocka_run_group_tests_name("control_parse", tests, NULL, NULL);
}
