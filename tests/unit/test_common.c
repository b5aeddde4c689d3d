/* Unit tests for small common modules: u64map, backoff, log redaction and escaping, token syntax. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "backoff.h"
#include "botapi.h"
#include "escape.h"
#include "log.h"
#include "u64map.h"

/* Key 0 is an update id like any other (Telegram may send it). */
static void test_u64map_against_model(void **state)
{
	enum { N = 5000 };
	static void *model[N];
	struct u64map m;
	unsigned seed = 7;
	size_t count = 0, walked = 0, it = 0;
	uint64_t key;
	void *val;

	u64map_init(&m);
	memset(model, 0, sizeof(model));
	for (int i = 0; i < 200000; i++) {
		uint64_t k = (uint64_t)(rand_r(&seed) % N);
		int op = rand_r(&seed) % 3;

		if (op == 0) {
			assert_int_equal(u64map_put(&m, k, (void *)(uintptr_t)(k * 3 + 1)), 0);
			model[k] = (void *)(uintptr_t)(k * 3 + 1);
		} else if (op == 1) {
			assert_ptr_equal(u64map_del(&m, k), model[k]);
			model[k] = NULL;
		} else {
			assert_ptr_equal(u64map_get(&m, k), model[k]);
		}
	}
	/* Whatever the loop left, the walk below sees key 0 too. */
	assert_int_equal(u64map_put(&m, 0, (void *)(uintptr_t)1), 0);
	model[0] = (void *)(uintptr_t)1;
	for (int k = 0; k < N; k++) {
		assert_ptr_equal(u64map_get(&m, (uint64_t)k), model[k]);
		count += model[k] != NULL;
	}
	assert_int_equal(m.count, count);
	while (u64map_next(&m, &it, &key, &val)) {
		assert_true(key < N);
		assert_ptr_equal(val, model[key]);
		walked++;
	}
	assert_int_equal(walked, count);
	assert_ptr_equal(u64map_del(&m, 0), model[0]);
	assert_null(u64map_get(&m, 0));
	assert_int_equal(m.count, count - 1);
	u64map_free(&m);
}

static void test_backoff_bounds(void **state)
{
	struct backoff b;
	int64_t prev_cap = 0;

	backoff_init(&b, 100, 3000, 42);
	for (int i = 0; i < 20; i++) {
		int64_t d = backoff_next(&b);

		assert_true(b.cur_ms >= prev_cap);
		assert_true(d >= b.cur_ms / 2 && d <= b.cur_ms);
		assert_true(d <= 3000);
		prev_cap = b.cur_ms;
	}
	assert_int_equal(b.cur_ms, 3000);
	backoff_reset(&b);
	assert_true(backoff_next(&b) <= 100);
}

static void test_backoff_delay(void **state)
{
	uint64_t rng = 7;

	for (int i = 0; i < 50; i++) {
		int64_t d1 = backoff_delay(1000, 300000, 1, &rng);
		int64_t d3 = backoff_delay(1000, 300000, 3, &rng);
		int64_t d30 = backoff_delay(1000, 300000, 30, &rng);

		assert_true(d1 >= 500 && d1 <= 1000);
		assert_true(d3 >= 2000 && d3 <= 4000);
		assert_true(d30 >= 150000 && d30 <= 300000);
		/* A base above the cap is the bound itself. */
		d1 = backoff_delay(600000, 300000, 2, &rng);
		assert_true(d1 >= 300000 && d1 <= 600000);
	}
	assert_int_equal(backoff_delay(0, 300000, 5, &rng), 0);
}

static void test_token_syntax(void **state)
{
	assert_true(botapi_token_valid("123456:ABC-def_123"));
	assert_false(botapi_token_valid(""));
	assert_false(botapi_token_valid("123456"));
	assert_false(botapi_token_valid("123456:"));
	assert_false(botapi_token_valid(":abc"));
	assert_false(botapi_token_valid("12a:abc"));
	assert_false(botapi_token_valid("123:ab/c"));
	assert_false(botapi_token_valid("123:ab c"));
	assert_false(botapi_token_valid(NULL));
}

static void test_buf_append_limits(void **state)
{
	struct botapi_buf b = { NULL, 0, 0, 0 };
	char chunk[1000];

	memset(chunk, 'x', sizeof(chunk));
	for (int i = 0; i < 10; i++)
		assert_int_equal(botapi_buf_append(&b, chunk, sizeof(chunk), 10000), 0);
	assert_int_equal(b.len, 10000);
	assert_int_equal(b.data[b.len], '\0');
	assert_int_equal(b.overflow, 0);
	/* Past the limit: refused, the buffer is unchanged, and it says why. */
	assert_int_equal(botapi_buf_append(&b, "y", 1, 10000), -1);
	assert_int_equal(b.len, 10000);
	assert_int_equal(b.overflow, 1);
	assert_int_equal(botapi_buf_append(&b, "", 0, 10000), 0);
	assert_true(b.cap > b.len);
	free(b.data);
}

/* Log one line with `fmt` to a file and return what was written (static buffer). */
static const char *logged(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *logged(const char *fmt, ...)
{
	static char buf[8192];
	char path[] = "/tmp/tgrun-logtest-XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	va_list ap;
	ssize_t n;

	assert_true(fd >= 0);
	dup2(fd, 2);
	va_start(ap, fmt);
	log_vmsg(LOG_LVL_WARN, fmt, ap);
	va_end(ap);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	assert_true(n > 0);
	buf[n] = '\0';
	close(fd);
	unlink(path);
	return buf;
}

static void test_log_redacts_secret(void **state)
{
	const char *out;

	log_init("test", 1);
	log_add_secret("123:SECRETsecret");
	out = logged("url http://h/bot123:SECRETsecret/getMe and again 123:SECRETsecret!");
	assert_null(strstr(out, "SECRET"));
	assert_non_null(strstr(out, "bot<redacted>/getMe and again <redacted>!"));
	assert_non_null(strstr(out, "[warn] test 1: "));
}

static void test_log_redaction_at_the_line_limit(void **state)
{
	static char line[4200];
	const char *out;

	log_init("test", -1);
	/* A secret shorter than "<redacted>" ending in the last bytes of the line. */
	log_add_secret("1:a");
	for (int len = 4080; len <= 4096; len++) {
		memset(line, 'x', sizeof(line));
		memcpy(line + len - 3, "1:a", 3);
		line[len] = '\0';
		out = logged("%s", line);
		assert_null(strstr(out, "1:a"));
	}
	/* A token cut off by the truncation of a long line: no prefix of it shows. */
	log_add_secret("987654321:ZYXWVUTSRQPONMLKJIHGFEDCBA");
	memset(line, 'y', sizeof(line));
	memcpy(line + 4085, "987654321:ZYXWVUTSRQPONMLKJIHGFEDCBA", 36);
	line[sizeof(line) - 1] = '\0';
	out = logged("%s", line);
	assert_null(strstr(out, "987654"));
	assert_non_null(strstr(out, "y<redacted>"));
}

static void test_log_keeps_many_secrets(void **state)
{
	char secret[32];
	const char *out;

	log_init("test", -1);
	log_add_secret("TOKEN-first-secret");
	/* A proxy's URL, credentials and password, twice over (a reload). */
	for (int i = 0; i < 6; i++) {
		snprintf(secret, sizeof(secret), "proxy-secret-%d", i);
		log_add_secret(secret);
	}
	out = logged("a TOKEN-first-secret b proxy-secret-5 c");
	assert_null(strstr(out, "secret"));
	assert_non_null(strstr(out, "a <redacted> b <redacted> c"));
}

/* One log call is one line: what a handler or the Bot API sends cannot forge another. */
static void test_log_escapes_control_characters(void **state)
{
	static const struct {
		const char *name, *in, *want;
	} cases[] = {
		{ "newline and a forged journald prefix", "hi\n<0>master: forged",
		    "hi\\n<0>master: forged" },
		{ "carriage return", "a\rb", "a\\rb" },
		{ "tab", "a\tb", "a\\tb" },
		{ "escape sequence", "\x1b[2J\x1b]0;title\x07", "\\x1b[2J\\x1b]0;title\\x07" },
		{ "other C0 and DEL", "\x01\x1f\x7f", "\\x01\\x1f\\x7f" },
		{ "UTF-8 kept", "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x99\x82",
		    "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x99\x82" },
		{ "C1 control (CSI)", "a\xc2\x9b" "2Jb", "a\\xc2\\x9b" "2Jb" },
		{ "NEL", "a\xc2\x85z", "a\\xc2\\x85z" },
		{ "stray bytes", "a\xff\xfe\x80z", "a\\xff\\xfe\\x80z" },
		{ "overlong slash", "\xc0\xaf", "\\xc0\\xaf" },
		{ "surrogate", "\xed\xa0\x80", "\\xed\\xa0\\x80" },
		{ "past U+10FFFF", "\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80" },
		{ "cut sequence", "ab\xe2\x9c", "ab\\xe2\\x9c" },
		{ "backslash kept", "C:\\dir \\n", "C:\\dir \\n" },
	};
	const char *out, *body;

	log_init("test", -1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		out = logged("[%s]", cases[i].in);
		body = strstr(out, "test: [");
		if (body == NULL || strncmp(body + 7, cases[i].want, strlen(cases[i].want)) != 0 ||
		    strcmp(body + 7 + strlen(cases[i].want), "]\n") != 0)
			fail_msg("%s: logged %s", cases[i].name, out);
		assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
	}
}

/* Escaping comes after redaction, and a long line is cut between escapes. */
static void test_log_escaping_with_secrets_and_at_the_limit(void **state)
{
	static char line[4200];
	const char *out;
	size_t len;

	log_init("test", -1);
	log_add_secret("555:ESCAPEDsecret");
	out = logged("a\n555:ESCAPEDsecret\nb");
	assert_null(strstr(out, "ESCAPED"));
	assert_non_null(strstr(out, "a\\n<redacted>\\nb\n"));

	memset(line, '\x01', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	out = logged("%s", line);
	len = strlen(out);
	assert_ptr_equal(strchr(out, '\n'), out + len - 1);
	assert_true(len > 4000 && len < 4096 + 128);
	/* Whole escapes only: the line ends with "\x01\n". */
	assert_string_equal(out + len - 5, "\\x01\n");
}

static void test_escape_text_capacity(void **state)
{
	char out[8];

	/* "\x01" takes 4 bytes: a second one and the NUL would need 9. */
	assert_int_equal(escape_text(out, sizeof(out), "\x01\x01", 2), 4);
	assert_string_equal(out, "\\x01");
	assert_int_equal(escape_text(out, sizeof(out), "abcdefghij", 10), 7);
	assert_string_equal(out, "abcdefg");
	/* A 4-byte character that does not fit whole is left out. */
	assert_int_equal(escape_text(out, sizeof(out), "abcde\xf0\x9f\x99\x82", 9), 5);
	assert_string_equal(out, "abcde");
	assert_int_equal(escape_text(out, 1, "abc", 3), 0);
	assert_string_equal(out, "");
	/* Embedded NUL bytes are escaped, not an end. */
	assert_int_equal(escape_text(out, sizeof(out), "a\0b", 3), 6);
	assert_string_equal(out, "a\\x00b");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_u64map_against_model),
		cmocka_unit_test(test_backoff_bounds),
		cmocka_unit_test(test_backoff_delay),
		cmocka_unit_test(test_token_syntax),
		cmocka_unit_test(test_buf_append_limits),
		cmocka_unit_test(test_log_redacts_secret),
		cmocka_unit_test(test_log_redaction_at_the_line_limit),
		cmocka_unit_test(test_log_keeps_many_secrets),
		cmocka_unit_test(test_log_escapes_control_characters),
		cmocka_unit_test(test_log_escaping_with_secrets_and_at_the_limit),
		cmocka_unit_test(test_escape_text_capacity),
	};
	return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
