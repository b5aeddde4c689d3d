/* Unit tests for common/jscan.c and keys_extract_raw(): grammar, splitting, equivalence with jansson. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <jansson.h>

#include "jscan.h"
#include "keys.h"

/* ---- jscan_skip_value over a whole buffer ---- */

struct skip_case {
	const char *name;
	const char *json;
	size_t len;
	int valid;	/* one value and only whitespace after it */
};

#define OK(n, s) { n, s, sizeof(s) - 1, 1 }
#define BAD(n, s) { n, s, sizeof(s) - 1, 0 }

#define NEST(s) "[" s "]"
#define N4(s) NEST(NEST(NEST(NEST(s))))
#define N16(s) N4(N4(N4(N4(s))))
#define N64(s) N16(N16(N16(N16(s))))

static const struct skip_case skip_cases[] = {
	/* Literals and numbers. */
	OK("true", "true"), OK("false", "false"), OK("null", "null"),
	BAD("tru", "tru"), BAD("True", "True"), BAD("nul", "nul"),
	BAD("nulll", "nulll"), BAD("truex", "truex"),
	OK("zero", "0"), OK("minus zero", "-0"), OK("int", "123"),
	OK("negative", "-123"), OK("fraction", "1.5"), OK("zero fraction", "0.0"),
	OK("exponent", "1e5"), OK("exponent E", "1E5"), OK("exponent +", "1e+5"),
	OK("exponent -", "1e-5"), OK("full number", "-12.34e-056"),
	OK("int64 max", "9223372036854775807"),
	OK("int64 min", "-9223372036854775808"),
	OK("long real", "123456789012345678901234567890.0"),
	OK("tiny exponent", "1e-999999999999"), OK("zero big exponent", "0e400"),
	OK("zero fraction big exponent", "-0.000e999999999999"),
	OK("DBL_MAX", "1.7976931348623157e308"),
	OK("rounds to DBL_MAX", "1.7976931348623158e308"),
	OK("below 1e308", "9.99e307"), OK("fraction scaled up", "0.00001e313"),
	BAD("leading zero", "01"), BAD("leading zero neg", "-01"),
	BAD("minus alone", "-"), BAD("plus", "+1"), BAD("dot first", ".5"),
	BAD("dot last", "1."), BAD("dot exp", "1.e5"), BAD("e alone", "1e"),
	BAD("e sign alone", "1e+"), BAD("e minus alone", "1E-"), BAD("hex", "0x1"),
	BAD("minus space", "- 1"), BAD("double minus", "--1"), BAD("NaN", "NaN"),
	BAD("Infinity", "Infinity"), BAD("-Infinity", "-Infinity"),
	BAD("two dots", "1.2.3"), BAD("two numbers", "1 2"),
	/* Strings. */
	OK("empty string", "\"\""), OK("plain string", "\"abc\""),
	OK("all escapes", "\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\""),
	OK("unicode escape", "\"\\u00e9\\u4E2D\""), OK("escaped U+0001", "\"\\u0001\""),
	OK("surrogate pair", "\"\\ud83d\\ude00\""), OK("utf8 2-byte", "\"\xc3\xa9\""),
	OK("utf8 3-byte", "\"\xe4\xb8\xad\""), OK("utf8 4-byte", "\"\xf0\x9f\x98\x80\""),
	OK("utf8 max", "\"\xf4\x8f\xbf\xbf\""), OK("DEL", "\"\x7f\""),
	BAD("unterminated", "\"abc"), BAD("unterminated escape", "\"abc\\"),
	BAD("bad escape x", "\"\\x41\""), BAD("bad escape a", "\"\\a\""),
	BAD("bad escape quote", "\"\\'\""), BAD("escape digit", "\"\\0\""),
	BAD("short u", "\"\\u12\""), BAD("bad hex", "\"\\u12g4\""),
	BAD("lone high", "\"\\ud83d\""), BAD("lone high then char",
	    "\"\\ud83dx\""), BAD("lone low", "\"\\ude00\""),
	BAD("high high", "\"\\ud83d\\ud83d\""), BAD("reversed pair",
	    "\"\\ude00\\ud83d\""), BAD("high then escape", "\"\\ud83d\\n\""),
	BAD("raw newline", "\"a\nb\""), BAD("raw tab", "\"a\tb\""),
	BAD("raw 0x1f", "\"\x1f\""), BAD("raw NUL in string", "\"a\0b\""),
	BAD("single quotes", "'a'"), BAD("utf8 lone continuation", "\"\x80\""),
	BAD("utf8 overlong 2", "\"\xc0\xaf\""), BAD("utf8 overlong 2b", "\"\xc1\xbf\""),
	BAD("utf8 overlong 3", "\"\xe0\x80\xaf\""),
	BAD("utf8 overlong 4", "\"\xf0\x80\x80\xaf\""),
	BAD("utf8 surrogate", "\"\xed\xa0\x80\""), BAD("utf8 above max",
	    "\"\xf4\x90\x80\x80\""), BAD("utf8 f5", "\"\xf5\x80\x80\x80\""),
	BAD("utf8 ff", "\"\xff\""), BAD("utf8 truncated", "\"\xe4\xb8\""),
	BAD("utf8 truncated at end", "\"\xe4\xb8"),
	BAD("utf8 bad continuation", "\"\xe4\x41\xad\""),
	/* Containers. */
	OK("empty object", "{}"), OK("empty array", "[]"),
	OK("empty with spaces", "{ }"), OK("empty array spaces", "[\t\n\r ]"),
	OK("array", "[1,\"a\",true,null,{},[]]"),
	OK("object", "{\"a\":1,\"b\":[1,2],\"c\":{\"d\":null}}"),
	OK("escaped key", "{\"\\u006fk\":true}"), OK("empty key", "{\"\":1}"),
	OK("duplicate keys", "{\"a\":1,\"a\":2}"),
	OK("whitespace everywhere", " \t\r\n{ \"a\" : [ 1 , 2 ] , \"b\" :\n{ } }\n "),
	BAD("trailing comma array", "[1,]"), BAD("trailing comma object",
	    "{\"a\":1,}"), BAD("leading comma", "[,1]"), BAD("missing comma",
	    "[1 2]"), BAD("missing colon", "{\"a\" 1}"), BAD("missing value",
	    "{\"a\":}"), BAD("key not string", "{a:1}"), BAD("number key",
	    "{1:1}"), BAD("unclosed array", "[1,2"), BAD("unclosed object",
	    "{\"a\":1"), BAD("mismatched", "[1}"), BAD("mismatched 2", "{\"a\":1]"),
	BAD("extra close", "[1]]"), BAD("colon in array", "[1:2]"),
	BAD("comma for colon", "{\"a\",1}"), BAD("double comma", "[1,,2]"),
	OK("depth 64", N64("")), OK("depth 65", NEST(N64("1"))),
	OK("depth 64 objects", N16(N16(N16(N4(N4(N4("{\"a\":{}}")))))) ),
	/* Whitespace and trailing garbage. */
	BAD("empty", ""), BAD("only spaces", "   "), OK("spaces around", "  1  "),
	BAD("form feed", "\f1"), BAD("vertical tab", "\v1"),
	BAD("nbsp", "\xc2\xa0" "1"), BAD("trailing garbage", "{} x"),
	BAD("two objects", "{}{}"), BAD("NUL after value", "{}\0"),
	BAD("NUL before value", "\0{}"), BAD("NUL inside object", "{\0}"),
	/* jansson's lexer skips these NULs; the worker refuses them first. */
	BAD("NUL after a number", "[1\0]"), BAD("NUL after a literal",
	    "{\"a\":true\0}"), BAD("NUL after a real", "[1.5e3\0,2]"),
	BAD("NUL after a top-level number", "1\0"),
	BAD("comment", "[1 /* c */]"), BAD("bom", "\xef\xbb\xbf{}"),
};

/* skip_value, then only whitespace may remain. */
static int whole_valid(const char *s, size_t len)
{
	const char *after, *end = s + len;

	if (jscan_skip_value(s, end, &after) != 0)
		return 0;
	if (after < s || after > end)
		fail_msg("after out of range");
	while (after < end && (*after == ' ' || *after == '\t' ||
	    *after == '\n' || *after == '\r'))
		after++;
	return after == end;
}

/* Copy into an exact-size heap buffer so ASan sees any read past the end. */
static int whole_valid_exact(const char *s, size_t len)
{
	char *b = malloc(len ? len : 1);
	int v;

	assert_non_null(b);
	memcpy(b, s, len);
	v = whole_valid(b, len);
	free(b);
	return v;
}

static void test_skip_table(void **state)
{
	size_t i;
	int bad = 0;

	for (i = 0; i < sizeof(skip_cases) / sizeof(skip_cases[0]); i++) {
		const struct skip_case *c = &skip_cases[i];

		if (whole_valid_exact(c->json, c->len) != c->valid) {
			print_error("skip case \"%s\": expected %s\n", c->name,
			    c->valid ? "valid" : "invalid");
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* The value ends exactly where it should, with bytes after it. */
static void test_skip_after(void **state)
{
	static const struct { const char *s; size_t used; } cases[] = {
		{ "123,", 3 }, { "\"a\\\"b\" ", 6 }, { "{\"a\":[1]}]", 9 },
		{ "  true}", 6 }, { "-1.5e3]", 6 }, { "[]x", 2 }, { "0 1", 1 },
	};
	const char *after;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(jscan_skip_value(cases[i].s,
		    cases[i].s + strlen(cases[i].s), &after), 0);
		assert_int_equal(after - cases[i].s, cases[i].used);
	}
}

/* A special byte at every offset of strings long enough for the 8-byte path. */
static void test_skip_positions(void **state)
{
	static const struct { const char *ins; int valid; } bytes[] = {
		{ "\x01", 0 }, { "\x1f", 0 }, { "\n", 0 }, { "\x80", 0 },
		{ "\xff", 0 }, { "\"", 0 }, { "\\", 0 }, { "\\n", 1 },
		{ "\\\"", 1 }, { "\xc3\xa9", 1 }, { "\xe4\xb8\xad", 1 },
		{ "\xed\xa0\x80", 0 }, { "\x7f", 1 }, { "\\u00e9", 1 },
	};
	char buf[64];
	size_t n, pos, b, il;

	for (n = 1; n <= 24; n++)
		for (pos = 0; pos < n; pos++)
			for (b = 0; b < sizeof(bytes) / sizeof(bytes[0]); b++) {
				il = strlen(bytes[b].ins);
				buf[0] = '"';
				memset(buf + 1, 'a', n);
				memcpy(buf + 1 + pos, bytes[b].ins, il);
				buf[1 + n + il] = '"';
				memset(buf + 1 + pos + il, 'a', n - pos);
				buf[1 + n + il] = '"';
				if (whole_valid_exact(buf, n + il + 2) != bytes[b].valid)
					fail_msg("string %zu bytes, insert %zu at %zu", n,
					    b, pos);
			}
}

static const char sample_body[] =
    "{\"ok\":true,\"result\":[{\"update_id\":1,\"message\":{\"message_id\":5,"
    "\"from\":{\"id\":111,\"is_bot\":false,\"first_name\":\"Ann \\u00e9\"},"
    "\"chat\":{\"id\":-1001234567890,\"type\":\"supergroup\"},\"date\":1700000000,"
    "\"text\":\"h\xc3\xa9llo \\ud83d\\ude00 \xf0\x9f\x98\x80 \\\"q\\\" \\\\\","
    "\"entities\":[{\"offset\":0,\"length\":2,\"type\":\"bold\"}],\"f\":-1.5e-3,"
    "\"n\":null,\"t\":true,\"e\":{},\"a\":[]}},{\"update_id\":2,\"poll\":{}}]}";

/* Every proper prefix of a valid document is invalid. */
static void test_skip_truncated(void **state)
{
	size_t n, len = sizeof(sample_body) - 1;
	int ok;

	assert_true(whole_valid_exact(sample_body, len));
	for (n = 0; n < len; n++) {
		if (whole_valid_exact(sample_body, n))
			fail_msg("prefix of %zu bytes accepted", n);
		if (jscan_result_array(sample_body, n, &ok, NULL, NULL) != -1)
			fail_msg("result_array accepted a prefix of %zu bytes", n);
	}
}

/* ---- what RFC 8259 allows and jansson refuses: each with its own code ---- */

struct code_case {
	const char *name;
	const char *json;
	int code;	/* jscan_skip_value() on the whole text */
};

static const struct code_case code_cases[] = {
	{ "escaped nul", "\"\\u0000\"", JSCAN_ENUL },
	{ "escaped nul inside", "\"ab\\u0000cd\"", JSCAN_ENUL },
	{ "escaped nul in a key", "{\"k\\u0000\":1}", JSCAN_ENUL },
	{ "escaped nul deep", "[{\"a\":[\"\\u0000\"]}]", JSCAN_ENUL },
	{ "escaped U+0001", "\"\\u0001\"", 0 },
	{ "escaped U+0100", "\"\\u0100\"", 0 },
	{ "int64 max + 1", "9223372036854775808", JSCAN_EINT },
	{ "int64 min - 1", "-9223372036854775809", JSCAN_EINT },
	{ "20 digits", "10000000000000000000", JSCAN_EINT },
	{ "uint64 max", "18446744073709551615", JSCAN_EINT },
	{ "huge integer", "123456789012345678901234567890", JSCAN_EINT },
	{ "19 nines", "9999999999999999999", JSCAN_EINT },
	{ "int64 max", "9223372036854775807", 0 },
	{ "int64 min", "-9223372036854775808", 0 },
	{ "18 nines", "-999999999999999999", 0 },
	{ "same as a real", "9223372036854775808.0", 0 },
	{ "1e400", "1e400", JSCAN_EREAL },
	{ "-1e400", "-1e400", JSCAN_EREAL },
	{ "1e309", "1e309", JSCAN_EREAL },
	{ "huge exponent", "1e999999999999999999999999", JSCAN_EREAL },
	{ "above DBL_MAX", "1.7976931348623159e308", JSCAN_EREAL },
	{ "2e308", "2e308", JSCAN_EREAL },
	{ "fraction scaled past", "0.0001e313", JSCAN_EREAL },
	{ "DBL_MAX", "1.7976931348623157e308", 0 },
	{ "1e308", "1e308", 0 },
	{ "1e-400 underflows to 0", "1e-400", 0 },
	{ "huge negative exponent", "-5e-999999999999999999999999", 0 },
	{ "zero with huge exponent", "0.0e999999999999999999", 0 },
	/* The first construct names the text; the rest is still checked. */
	{ "first of two", "[1e400,\"\\u0000\"]", JSCAN_EREAL },
	{ "first of two reversed", "[\"\\u0000\",1e400]", JSCAN_ENUL },
	{ "malformed after a flaw", "[\"\\u0000\",01]", JSCAN_EBADJSON },
	{ "truncated after a flaw", "[99999999999999999999", JSCAN_EBADJSON },
};

/* What the worker calls: json_loadb(..., 0, ...), which wants a container. */
static int jansson_loads(const char *s, size_t len, json_error_t *jerr)
{
	json_t *j = json_loadb(s, len, JSON_DECODE_ANY, jerr);

	json_decref(j);
	return j != NULL;
}

static void test_refusal_codes(void **state)
{
	const char *after;
	json_error_t jerr;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(code_cases) / sizeof(code_cases[0]); i++) {
		const struct code_case *c = &code_cases[i];
		size_t len = strlen(c->json);

		after = NULL;
		rc = jscan_skip_value(c->json, c->json + len, &after);
		if (rc != c->code)
			fail_msg("%s: code %d (%s), expected %d", c->name, rc,
			    jscan_strerror(rc), c->code);
		if (JSCAN_WELLFORMED(rc) && after != c->json + len)
			fail_msg("%s: value ends at %td", c->name, after - c->json);
		if (jansson_loads(c->json, len, &jerr) != (rc == 0))
			fail_msg("%s: jansson disagrees (%s)", c->name, jerr.text);
	}
	assert_true(JSCAN_WELLFORMED(0) && JSCAN_WELLFORMED(1));
	assert_true(JSCAN_WELLFORMED(JSCAN_ENUL) && JSCAN_WELLFORMED(JSCAN_EINT) &&
	    JSCAN_WELLFORMED(JSCAN_EREAL));
	assert_false(JSCAN_WELLFORMED(JSCAN_EBADJSON) ||
	    JSCAN_WELLFORMED(JSCAN_EDEPTH));
	assert_string_equal(jscan_strerror(JSCAN_ENUL), "\\u0000 in a string");
}

/* 2^1024 - 2^970: DBL_MAX plus half an ulp, the first value strtod() overflows on. */
static const char dbl_limit[] =
    "1797693134862315807937289714053034150799341327100378269361737789804449"
    "6829276475094664901797758720709633028641669288791094655554785194040263"
    "0657488671505820681908902000708383676273854845817711531764475730270069"
    "8555713669596228429148198608349364752927190741684443655107043427115596"
    "99508093042880177904174497792";

/* Reals around the overflow limit, written with many digits: strtod() rounds. */
static void test_real_limit(void **state)
{
	static const struct { const char *pre, *post; int code; } cases[] = {
		{ "", ".0", JSCAN_EREAL },		/* the limit itself */
		{ "", ".0000000001", JSCAN_EREAL },
		{ "-", "e0", JSCAN_EREAL },
		{ "", "", JSCAN_EINT },		/* an integer, not a real */
		{ "0.", "e309", JSCAN_EREAL },
		{ "", "0e-1", JSCAN_EREAL },
	};
	char buf[2048];
	const char *after;
	json_error_t jerr;
	size_t i, len;
	int rc, k;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		len = (size_t)snprintf(buf, sizeof(buf), "%s%s%s", cases[i].pre,
		    dbl_limit, cases[i].post);
		rc = jscan_skip_value(buf, buf + len, &after);
		if (rc != cases[i].code || jansson_loads(buf, len, &jerr) != (rc == 0))
			fail_msg("limit case %zu: code %d", i, rc);
	}
	/* One below the limit, then with 600 more digits: all below it. */
	len = (size_t)snprintf(buf, sizeof(buf), "%s.0", dbl_limit);
	buf[len - 3] = '1';
	for (k = 0; k < 2; k++) {
		rc = jscan_skip_value(buf, buf + len, &after);
		if (rc != 0 || !jansson_loads(buf, len, &jerr))
			fail_msg("below the limit (%zu digits): code %d", len, rc);
		memset(buf + len, '9', 600);
		len += 600;
	}
	/* The limit shifted into the fraction, 500 leading zeros, e+500. */
	len = (size_t)snprintf(buf, sizeof(buf), "0.");
	memset(buf + len, '0', 499);
	len += 499;
	len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%se808", dbl_limit);
	rc = jscan_skip_value(buf, buf + len, &after);
	if (rc != JSCAN_EREAL || jansson_loads(buf, len, &jerr))
		fail_msg("shifted limit: code %d", rc);
	buf[len - 5] = '1';	/* ...792 -> ...791: just below */
	rc = jscan_skip_value(buf, buf + len, &after);
	if (rc != 0 || !jansson_loads(buf, len, &jerr))
		fail_msg("shifted, below the limit: code %d", rc);
}

/* n containers around `inner`: "[[...inner...]]", or objects {"a":...}. */
static char *nested(int n, const char *inner, int objects)
{
	size_t il = strlen(inner), len = (size_t)n * (objects ? 6 : 2) + il;
	char *b = malloc(len + 1), *p = b;
	int i;

	assert_non_null(b);
	for (i = 0; i < n; i++) {
		memcpy(p, objects ? "{\"a\":" : "[", objects ? 5 : 1);
		p += objects ? 5 : 1;
	}
	memcpy(p, inner, il);
	p += il;
	for (i = 0; i < n; i++)
		*p++ = objects ? '}' : ']';
	*p = '\0';
	return b;
}

/* jansson's depth limit, counted its way: jscan agrees at every edge. */
static void test_depth_limit(void **state)
{
	static const char *const inner[] = { "", "1", "[]", "{}", "\"\\u0000\"" };
	const char *after;
	json_error_t jerr;
	size_t i;
	int n, o, rc, ok;

	for (n = JSCAN_MAX_DEPTH - 3; n <= JSCAN_MAX_DEPTH + 1; n++)
		for (i = 0; i < sizeof(inner) / sizeof(inner[0]); i++)
			for (o = 0; o < 2; o++) {
				char *b;
				size_t len;
				int expect;

				if (o && inner[i][0] == '\0')
					continue;	/* {"a":} is not JSON */
				b = nested(n, inner[i], o);
				len = strlen(b);
				rc = jscan_skip_value(b, b + len, &after);
				expect = jansson_loads(b, len, &jerr);
				if ((rc == 0) != expect ||
				    (!expect && rc != JSCAN_EDEPTH &&
				    strstr(jerr.text, "depth") != NULL))
					fail_msg("%d x %s around \"%s\": code %d, jansson %s",
					    n, o ? "object" : "array", inner[i], rc,
					    expect ? "loads" : jerr.text);
				free(b);
			}
	/* Inside a getUpdates answer the envelope's two levels count too. */
	for (n = JSCAN_MAX_DEPTH - 4; n <= JSCAN_MAX_DEPTH - 1; n++) {
		char *e = nested(n, "", 0), *b;
		size_t len = strlen(e) + 64;

		assert_non_null(b = malloc(len));
		len = (size_t)snprintf(b, len, "{\"ok\":true,\"result\":[%s]}", e);
		rc = jscan_result_array(b, len, &ok, NULL, NULL);
		if ((rc == 0) != jansson_loads(b, len, &jerr))
			fail_msg("answer with %d levels inside: code %d", n, rc);
		if (rc != 0 && rc != JSCAN_EDEPTH)
			fail_msg("answer with %d levels inside: code %d", n, rc);
		free(b);
		free(e);
	}
}

/* ---- jscan_result_array ---- */

struct split {
	int n;
	const char *elem[8];
	size_t len[8];
	int err[8];
	int stop_at;	/* return 7 from this call (1-based), 0 never */
};

static int collect(void *arg, const char *elem, size_t len, int err)
{
	struct split *s = arg;

	if (s->n == 8)
		fail_msg("too many elements");
	s->elem[s->n] = elem;
	s->len[s->n] = len;
	s->err[s->n] = err;
	s->n++;
	return s->n == s->stop_at ? 7 : 0;
}

struct split_case {
	const char *name;
	const char *body;
	int rc, ok;
	int n;
	const char *elems[4];	/* expected exact bytes */
	int errs[4];		/* expected err per element */
};

static const struct split_case split_cases[] = {
	{ "two updates", "{\"ok\":true,\"result\":[{\"update_id\":1},{\"update_id\":2}]}",
	  0, 1, 2, { "{\"update_id\":1}", "{\"update_id\":2}" }, { 0 } },
	{ "whitespace kept out of elements",
	  " \n{ \"ok\" : true , \"result\" : [ \n {\"a\" : [ 1 ] } ,\t\"s]\\\"\" , 3 ,"
	  "[\"]\"] ] }\r\n", 0, 1, 4,
	  { "{\"a\" : [ 1 ] }", "\"s]\\\"\"", "3", "[\"]\"]" }, { 0 } },
	{ "empty result", "{\"ok\":true,\"result\":[]}", 0, 1, 0, { NULL }, { 0 } },
	{ "result first", "{\"result\":[1,2],\"ok\":true}", 0, 1, 2, { "1", "2" }, { 0 } },
	{ "unknown keys skipped",
	  "{\"x\":{\"result\":[9]},\"ok\":true,\"y\":[{}],\"result\":[true],\"z\":0}",
	  0, 1, 1, { "true" }, { 0 } },
	{ "escaped keys", "{\"\\u006fk\":true,\"r\\u0065sult\":[\"e\"]}",
	  0, 1, 1, { "\"e\"" }, { 0 } },
	{ "escaped solidus key", "{\"ok\":true,\"result\\/\":[1],\"result\":[2]}",
	  0, 1, 1, { "2" }, { 0 } },
	{ "duplicate result: last wins", "{\"ok\":true,\"result\":[1],\"result\":[2,3]}",
	  0, 1, 2, { "2", "3" }, { 0 } },
	{ "duplicate ok: last wins", "{\"ok\":false,\"result\":[1],\"ok\":true}",
	  0, 1, 1, { "1" }, { 0 } },
	{ "ok false", "{\"ok\":false,\"error_code\":409,\"description\":\"Conflict\"}",
	  0, 0, 0, { NULL }, { 0 } },
	{ "ok false with result", "{\"ok\":false,\"result\":[1]}", 0, 0, 0, { NULL }, { 0 } },
	{ "result not an array", "{\"ok\":true,\"result\":true}", 0, 1, 0, { NULL }, { 0 } },
	{ "result object", "{\"ok\":true,\"result\":{\"a\":[1]}}", 0, 1, 0, { NULL }, { 0 } },
	{ "result absent", "{\"ok\":true}", 0, 1, 0, { NULL }, { 0 } },
	{ "ok missing", "{\"result\":[1]}", -1, 0, 0, { NULL }, { 0 } },
	{ "ok not boolean", "{\"ok\":1,\"result\":[1]}", -1, 0, 0, { NULL }, { 0 } },
	{ "ok string", "{\"ok\":\"true\",\"result\":[1]}", -1, 0, 0, { NULL }, { 0 } },
	{ "key OK is not ok", "{\"OK\":true,\"result\":[1]}", -1, 0, 0, { NULL }, { 0 } },
	{ "top level array", "[{\"ok\":true}]", -1, 0, 0, { NULL }, { 0 } },
	{ "top level string", "\"ok\"", -1, 0, 0, { NULL }, { 0 } },
	{ "trailing garbage", "{\"ok\":true,\"result\":[1]}x", -1, 0, 0, { NULL }, { 0 } },
	{ "second object", "{\"ok\":true,\"result\":[1]} {}", -1, 0, 0, { NULL }, { 0 } },
	{ "malformed element", "{\"ok\":true,\"result\":[{\"a\":01}]}", -1, 0, 0,
	  { NULL }, { 0 } },
	{ "malformed after result", "{\"ok\":true,\"result\":[1],\"x\":tru}", -1, 0, 0,
	  { NULL }, { 0 } },
	{ "bad string elsewhere", "{\"ok\":true,\"result\":[1],\"d\":\"\\q\"}", -1, 0, 0,
	  { NULL }, { 0 } },
	{ "empty", "", -1, 0, 0, { NULL }, { 0 } },
	/* What jansson refuses: the element alone when it is inside one. */
	{ "nul in one element",
	  "{\"ok\":true,\"result\":[{\"u\":1},{\"t\":\"a\\u0000\"},{\"u\":3}]}",
	  0, 1, 3, { "{\"u\":1}", "{\"t\":\"a\\u0000\"}", "{\"u\":3}" },
	  { 0, JSCAN_ENUL, 0 } },
	{ "nul in a key of an element",
	  "{\"ok\":true,\"result\":[{\"\\u0000\":1}]}", 0, 1, 1,
	  { "{\"\\u0000\":1}" }, { JSCAN_ENUL } },
	{ "big integer and overflowing real",
	  "{\"ok\":true,\"result\":[[9223372036854775808],-1e400,1e-400,"
	  "-9223372036854775809]}", 0, 1, 4,
	  { "[9223372036854775808]", "-1e400", "1e-400", "-9223372036854775809" },
	  { JSCAN_EINT, JSCAN_EREAL, 0, JSCAN_EINT } },
	{ "first flaw names the element",
	  "{\"ok\":true,\"result\":[{\"a\":1e999,\"b\":\"\\u0000\"}]}", 0, 1, 1,
	  { "{\"a\":1e999,\"b\":\"\\u0000\"}" }, { JSCAN_EREAL } },
	{ "flaw outside the result",
	  "{\"ok\":true,\"result\":[1],\"x\":\"\\u0000\"}", JSCAN_ENUL, 1, 0,
	  { NULL }, { 0 } },
	{ "flaw in a key outside the result",
	  "{\"\\u0000\":0,\"ok\":true,\"result\":[1]}", JSCAN_ENUL, 1, 0, { NULL }, { 0 } },
	{ "flaw in an earlier duplicate result",
	  "{\"ok\":true,\"result\":[1e400],\"result\":[1]}", JSCAN_EREAL, 1, 0,
	  { NULL }, { 0 } },
	{ "flaw in a result that is not an array",
	  "{\"ok\":true,\"result\":{\"a\":99999999999999999999}}", JSCAN_EINT, 1, 0,
	  { NULL }, { 0 } },
	{ "flaw with ok false",
	  "{\"ok\":false,\"result\":[1e400],\"description\":\"x\"}", JSCAN_EREAL,
	  0, 0, { NULL }, { 0 } },
	{ "malformed wins over a flaw",
	  "{\"ok\":true,\"result\":[\"\\u0000\"],\"x\":01}", -1, 0, 0, { NULL }, { 0 } },
	{ "malformed element after a flawed one",
	  "{\"ok\":true,\"result\":[1e400,[}]}", -1, 0, 0, { NULL }, { 0 } },
};

static void test_split_table(void **state)
{
	size_t i;
	int j, ok, rc;

	for (i = 0; i < sizeof(split_cases) / sizeof(split_cases[0]); i++) {
		const struct split_case *c = &split_cases[i];
		size_t len = strlen(c->body);
		char *b = malloc(len + 1);
		struct split s = { 0 };

		assert_non_null(b);
		memcpy(b, c->body, len);
		ok = -5;
		rc = jscan_result_array(b, len, &ok, collect, &s);
		if (rc != c->rc || (JSCAN_WELLFORMED(rc) && ok != c->ok) ||
		    s.n != c->n)
			fail_msg("%s: rc %d ok %d n %d, expected %d %d %d", c->name,
			    rc, ok, s.n, c->rc, c->ok, c->n);
		for (j = 0; j < s.n; j++) {
			if (s.len[j] != strlen(c->elems[j]) ||
			    memcmp(s.elem[j], c->elems[j], s.len[j]) != 0)
				fail_msg("%s: element %d is \"%.*s\"", c->name, j,
				    (int)s.len[j], s.elem[j]);
			if (s.err[j] != c->errs[j])
				fail_msg("%s: element %d err %d, expected %d", c->name,
				    j, s.err[j], c->errs[j]);
		}
		/* Validation only: the first flawed element refuses the body. */
		rc = jscan_result_array(b, len, &ok, NULL, NULL);
		for (j = 0; j < c->n && c->errs[j] == 0; j++)
			;
		if (j < c->n && rc != c->errs[j])
			fail_msg("%s: without a callback rc %d", c->name, rc);
		free(b);
	}
}

static void test_split_stop(void **state)
{
	static const char body[] = "{\"ok\":true,\"result\":[1,2,3]}";
	struct split s = { .stop_at = 2 };
	int ok;

	assert_int_equal(jscan_result_array(body, sizeof(body) - 1, &ok, collect,
	    &s), 7);
	assert_int_equal(s.n, 2);
}

/* ---- jscan_get, jscan_int64, jscan_first_key, member iteration ---- */

static void test_get(void **state)
{
	static const char o[] = "{\"message\":{\"chat\":{\"id\":-100,\"x\":[1]},"
	    "\"c\\u0068at\":{\"id\":5},\"from\":7,\"e\":{}},\"m\":1,\"m\":[2]} ";
	const char *p1[] = { "message", "chat", "id" };
	const char *p2[] = { "message", "from", "id" };
	const char *p3[] = { "message", "nope" };
	const char *p4[] = { "m" };
	const char *p5[] = { "message", "e" };
	const char *v;
	size_t vl;
	int64_t n;

	/* The escaped "chat" comes later, so it wins. */
	assert_int_equal(jscan_get(o, sizeof(o) - 1, p1, 3, &v, &vl), 1);
	assert_int_equal(jscan_int64(v, vl, &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(jscan_get(o, sizeof(o) - 1, p2, 3, &v, &vl), 0);
	assert_int_equal(jscan_get(o, sizeof(o) - 1, p3, 2, &v, &vl), 0);
	assert_int_equal(jscan_get(o, sizeof(o) - 1, p4, 1, &v, &vl), 1);
	assert_int_equal(vl, 3);
	assert_memory_equal(v, "[2]", 3);
	assert_int_equal(jscan_get(o, sizeof(o) - 1, p5, 2, &v, &vl), 1);
	assert_memory_equal(v, "{}", 2);
	assert_int_equal(jscan_get("[1]", 3, p4, 1, &v, &vl), 0);
	assert_int_equal(jscan_get("\"m\"", 3, p4, 1, &v, &vl), 0);
	assert_int_equal(jscan_get("[1", 2, p4, 1, &v, &vl), -1);
	assert_int_equal(jscan_get("{\"m\":1,}", 8, p4, 1, &v, &vl), -1);
	assert_int_equal(jscan_get("{\"m\":1", 6, p4, 1, &v, &vl), -1);
	assert_int_equal(jscan_get("", 0, p4, 1, &v, &vl), -1);
	assert_int_equal(jscan_get(" 12 ", 4, p4, 0, &v, &vl), 1);
	assert_int_equal(vl, 2);

	/* On valid bytes the trusting variant gives the same answers. */
	{
		const char *const *paths[] = { p1, p2, p3, p4, p5 };
		static const size_t depths[] = { 3, 3, 2, 1, 2 };
		const char *v2;
		size_t i, vl2;
		int r1, r2;

		for (i = 0; i < 5; i++) {
			r1 = jscan_get(o, sizeof(o) - 1, paths[i], depths[i], &v, &vl);
			r2 = jscan_get_valid(o, sizeof(o) - 1, paths[i], depths[i],
			    &v2, &vl2);
			assert_int_equal(r1, r2);
			if (r1 == 1) {
				assert_ptr_equal(v, v2);
				assert_int_equal(vl, vl2);
			}
		}
	}
}

static void test_int64(void **state)
{
	static const struct { const char *s; int rc; int64_t v; } cases[] = {
		{ "0", 0, 0 }, { "-0", 0, 0 }, { "7", 0, 7 }, { "-42", 0, -42 },
		{ "9223372036854775807", 0, INT64_MAX },
		{ "-9223372036854775808", 0, INT64_MIN },
		{ "9223372036854775808", -1, 0 }, { "-9223372036854775809", -1, 0 },
		{ "18446744073709551616", -1, 0 }, { "99999999999999999999", -1, 0 },
		{ "1.0", -1, 0 }, { "1e2", -1, 0 }, { "1E2", -1, 0 }, { "\"1\"", -1, 0 },
		{ "01", -1, 0 }, { "-", -1, 0 }, { "", -1, 0 }, { "+1", -1, 0 },
		{ " 1", -1, 0 }, { "1 ", -1, 0 }, { "true", -1, 0 }, { "null", -1, 0 },
	};
	size_t i;
	int64_t v;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		v = 12345;
		if (jscan_int64(cases[i].s, strlen(cases[i].s), &v) != cases[i].rc ||
		    (cases[i].rc == 0 && v != cases[i].v))
			fail_msg("int64 \"%s\"", cases[i].s);
	}
}

static int accept_type(void *arg, const char *key)
{
	(*(int *)arg)++;
	return keys_type_from_name(key) != UPD_UNKNOWN;
}

static void test_first_key(void **state)
{
	static const char u[] = "{\"update_id\":1,\"future\":{},"
	    "\"very_long_key_that_does_not_fit_in_the_buffer\":0,"
	    "\"\\u0063allback_query\":{\"id\":\"x\"},\"poll\":{}}";
	char buf[32];
	int calls = 0;

	assert_int_equal(jscan_first_key(u, sizeof(u) - 1, "update_id", NULL, NULL,
	    buf, sizeof(buf)), 1);
	assert_string_equal(buf, "future");
	assert_int_equal(jscan_first_key(u, sizeof(u) - 1, "update_id",
	    accept_type, &calls, buf, sizeof(buf)), 1);
	assert_string_equal(buf, "callback_query");
	assert_int_equal(calls, 2);
	assert_int_equal(jscan_first_key("{\"update_id\":1}", 15, "update_id",
	    NULL, NULL, buf, sizeof(buf)), 0);
	assert_int_equal(jscan_first_key("{\"a\\u0000\":1}", 13, NULL, NULL, NULL,
	    buf, sizeof(buf)), JSCAN_ENUL);
	assert_int_equal(jscan_first_key("{\"update_id\":1,", 15, "update_id",
	    NULL, NULL, buf, sizeof(buf)), -1);
	assert_int_equal(jscan_first_key("[]", 2, NULL, NULL, NULL, buf,
	    sizeof(buf)), -1);
}

static void test_keys_unescaped(void **state)
{
	static const char o[] = "{\"\\u00e9\\ud83d\\ude00\\n\\\"\\\\\\/x\":1,"
	    "\"\xc3\xa9\":2,\"a\\u0000\":3}";
	struct jscan_iter it;
	struct jscan_member m;
	char buf[16];

	assert_int_equal(jscan_object_begin(&it, o, sizeof(o) - 1), 0);
	assert_int_equal(jscan_object_next(&it, &m), 1);
	assert_true(m.key_escaped);
	assert_int_equal(jscan_key_copy(&m, buf, sizeof(buf)), 11);
	assert_string_equal(buf, "\xc3\xa9\xf0\x9f\x98\x80\n\"\\/x");
	assert_true(jscan_key_eq(&m, "\xc3\xa9\xf0\x9f\x98\x80\n\"\\/x"));
	assert_false(jscan_key_eq(&m, "\xc3\xa9\xf0\x9f\x98\x80\n\"\\/"));
	assert_false(jscan_key_eq(&m, "\xc3\xa9\xf0\x9f\x98\x80\n\"\\/xy"));
	assert_int_equal(jscan_key_copy(&m, buf, 11), -1);
	assert_int_equal(jscan_object_next(&it, &m), 1);
	assert_false(m.key_escaped);
	assert_true(jscan_key_eq(&m, "\xc3\xa9"));
	/* jansson refuses the key, yet the member is filled and the walk goes on. */
	assert_int_equal(jscan_object_next(&it, &m), JSCAN_ENUL);
	assert_int_equal(m.vlen, 1);
	assert_memory_equal(m.val, "3", 1);
	assert_false(jscan_key_eq(&m, "a"));
	assert_int_equal(jscan_key_copy(&m, buf, sizeof(buf)), -1);
	assert_int_equal(jscan_object_next(&it, &m), 0);
	assert_int_equal(jscan_object_next(&it, &m), 0);
}

/* ---- keys_extract_raw() == keys_extract() ---- */

#define USER(id) "{\"id\":" #id ",\"is_bot\":false,\"first_name\":\"Ann\"}"
#define PRIV(id) "{\"id\":" #id ",\"type\":\"private\",\"first_name\":\"Ann\"}"
#define SUPERGROUP "{\"id\":-1001234567890,\"type\":\"supergroup\",\"title\":\"G\"}"
#define FORUM "{\"id\":-1001234567890,\"type\":\"supergroup\",\"is_forum\":true}"
#define CHANNEL "{\"id\":-1009876543210,\"type\":\"channel\",\"title\":\"C\"}"

/* From test_keys.c: every update type and the odd shapes. */
static const char *const key_samples[] = {
	"{\"update_id\":1,\"message\":{\"message_id\":5,\"from\":" USER(111)
	",\"chat\":" PRIV(111) ",\"date\":1700000000,\"text\":\"hi\"}}",
	"{\"update_id\":2,\"message\":{\"message_id\":6,\"message_thread_id\":77,"
	"\"is_topic_message\":true,\"from\":" USER(112) ",\"chat\":" FORUM "}}",
	"{\"update_id\":4,\"message\":{\"message_id\":8,\"sender_chat\":" SUPERGROUP
	",\"chat\":" SUPERGROUP ",\"date\":1700000000,\"text\":\"x\"}}",
	"{\"update_id\":5,\"edited_message\":{\"from\":" USER(111) ",\"chat\":"
	PRIV(111) "}}",
	"{\"update_id\":6,\"edited_message\":{\"message_thread_id\":77,\"from\":"
	USER(112) ",\"chat\":" FORUM "}}",
	"{\"update_id\":7,\"channel_post\":{\"sender_chat\":" CHANNEL ",\"chat\":"
	CHANNEL "}}",
	"{\"update_id\":8,\"edited_channel_post\":{\"chat\":" CHANNEL "}}",
	"{\"update_id\":9,\"business_connection\":{\"id\":\"bc1\",\"user\":"
	USER(222) ",\"user_chat_id\":222}}",
	"{\"update_id\":10,\"business_message\":{\"from\":" USER(333) ",\"chat\":"
	PRIV(333) "}}",
	"{\"update_id\":11,\"edited_business_message\":{\"from\":" USER(333)
	",\"chat\":" PRIV(333) "}}",
	"{\"update_id\":12,\"deleted_business_messages\":{\"chat\":" PRIV(333)
	",\"message_ids\":[1,2]}}",
	"{\"update_id\":13,\"message_reaction\":{\"chat\":" SUPERGROUP ",\"user\":"
	USER(444) ",\"old_reaction\":[],\"new_reaction\":[{\"type\":\"emoji\"}]}}",
	"{\"update_id\":14,\"message_reaction\":{\"chat\":" SUPERGROUP
	",\"actor_chat\":" CHANNEL "}}",
	"{\"update_id\":15,\"message_reaction_count\":{\"chat\":" CHANNEL "}}",
	"{\"update_id\":16,\"inline_query\":{\"id\":\"q1\",\"from\":" USER(555) "}}",
	"{\"update_id\":17,\"chosen_inline_result\":{\"from\":" USER(555) "}}",
	"{\"update_id\":18,\"callback_query\":{\"id\":\"cb1\",\"from\":" USER(666)
	",\"message\":{\"message_id\":20,\"chat\":" SUPERGROUP "}}}",
	"{\"update_id\":19,\"callback_query\":{\"from\":" USER(666) ",\"message\":{"
	"\"message_thread_id\":77,\"chat\":" FORUM "}}}",
	"{\"update_id\":21,\"callback_query\":{\"from\":" USER(666)
	",\"inline_message_id\":\"im1\"}}",
	"{\"update_id\":22,\"shipping_query\":{\"from\":" USER(777) "}}",
	"{\"update_id\":23,\"pre_checkout_query\":{\"from\":" USER(777) "}}",
	"{\"update_id\":24,\"purchased_paid_media\":{\"from\":" USER(888) "}}",
	"{\"update_id\":25,\"poll\":{\"id\":\"p1\",\"options\":[]}}",
	"{\"update_id\":26,\"poll_answer\":{\"user\":" USER(999) "}}",
	"{\"update_id\":27,\"poll_answer\":{\"voter_chat\":" CHANNEL "}}",
	"{\"update_id\":28,\"my_chat_member\":{\"chat\":" SUPERGROUP ",\"from\":"
	USER(123) "}}",
	"{\"update_id\":29,\"chat_member\":{\"chat\":" SUPERGROUP ",\"from\":"
	USER(124) "}}",
	"{\"update_id\":30,\"chat_join_request\":{\"chat\":" SUPERGROUP ",\"from\":"
	USER(125) "}}",
	"{\"update_id\":31,\"chat_boost\":{\"chat\":" CHANNEL ",\"boost\":{"
	"\"source\":{\"source\":\"premium\",\"user\":" USER(126) "}}}}",
	"{\"update_id\":32,\"chat_boost\":{\"chat\":" CHANNEL ",\"boost\":{"
	"\"source\":{\"source\":\"giveaway\"}}}}",
	"{\"update_id\":33,\"removed_chat_boost\":{\"chat\":" CHANNEL ",\"source\":{"
	"\"source\":\"premium\",\"user\":" USER(126) "}}}",
	"{\"message\":{\"from\":" USER(1) ",\"chat\":" PRIV(1) "},\"update_id\":40}",
	"{\"update_id\":41,\"future_thing\":{\"chat\":{\"id\":5}},"
	"\"message\":{\"chat\":" PRIV(2) "}}",
	"{\"update_id\":42,\"future_update\":{\"chat\":{\"id\":5},\"from\":{\"id\":6}}}",
	"{\"update_id\":43}",
	"{\"update_id\":0,\"message\":{\"chat\":{\"id\":-9223372036854775807}}}",
	"{\"update_id\":44,\"message\":{\"from\":" USER(7) ",\"chat\":{\"id\":"
	"\"-100123\"},\"message_thread_id\":5}}",
	"{\"update_id\":45,\"message\":{\"from\":{\"id\":7.5},\"chat\":" PRIV(7) "}}",
	"{\"update_id\":46,\"message\":{\"message_thread_id\":\"77\",\"chat\":"
	FORUM "}}",
	"{\"update_id\":47,\"message\":{\"chat\":-100,\"from\":[1]}}",
	"{\"update_id\":48,\"message\":\"hello\"}",
	"{\"update_id\":49,\"callback_query\":null}",
	"{\"update_id\":50,\"callback_query\":{\"from\":" USER(3) ",\"message\":null}}",
	"{\"update_id\":51,\"poll_answer\":{\"user\":" USER(8) ",\"voter_chat\":"
	CHANNEL "}}",
	"{\"message\":{\"chat\":" PRIV(1) "}}",
	"{\"update_id\":\"52\",\"message\":{\"chat\":" PRIV(1) "}}",
	"{\"update_id\":53.0,\"poll\":{}}",
	"{\"update_id\":null}", "{}", "[{\"update_id\":1,\"poll\":{}}]", "[]", "54",
	"\"update\"",
	/* Escapes, duplicates, whitespace: jansson's view of them. */
	"{\"upd\\u0061te_id\":60,\"\\u006dessage\":{\"ch\\u0061t\":{\"\\u0069d\":9},"
	"\"message_thread_id\":3}}",
	"{\"update_id\":61,\"poll\":{},\"message\":{\"chat\":{\"id\":1}}}",
	"{\"update_id\":62,\"message\":{\"chat\":{\"id\":1}},\"message\":{\"chat\":"
	"{\"id\":2}}}",
	"{\"update_id\":63,\"poll\":{},\"message\":{},\"poll\":7,\"update_id\":64}",
	"{\"update_id\":65,\"message\":{\"chat\":{\"id\":1,\"id\":\"x\"},"
	"\"from\":{\"id\":\"x\",\"id\":2}}}",
	" \n{ \"update_id\" : 66 , \"message\" : { \"chat\" : { \"id\" : -0 } } }\t",
	"{\"update_id\":67,\"message\":{\"chat\":{\"id\":-9223372036854775808}}}",
	"{\"update_id\":68,\"message\":{\"chat\":{\"id\":1e3},\"from\":{\"id\":10}}}",
};

static void expect_same(const char *what, const struct update_keys *a,
    const struct update_keys *b, int ra, int rb)
{
	if (ra != rb || a->update_id != b->update_id || a->type != b->type ||
	    a->has_chat != b->has_chat || a->has_user != b->has_user ||
	    a->has_thread != b->has_thread ||
	    (a->has_chat && a->chat_id != b->chat_id) ||
	    (a->has_user && a->user_id != b->user_id) ||
	    (a->has_thread && a->thread_id != b->thread_id))
		fail_msg("%s: jansson rc %d id %lld %s c%d:%lld u%d:%lld t%d:%lld, "
		    "raw rc %d id %lld %s c%d:%lld u%d:%lld t%d:%lld", what, ra,
		    (long long)a->update_id, keys_type_name(a->type), a->has_chat,
		    (long long)a->chat_id, a->has_user, (long long)a->user_id,
		    a->has_thread, (long long)a->thread_id, rb,
		    (long long)b->update_id, keys_type_name(b->type), b->has_chat,
		    (long long)b->chat_id, b->has_user, (long long)b->user_id,
		    b->has_thread, (long long)b->thread_id);
}

static void compare_text(const char *what, const char *text, size_t len)
{
	struct update_keys a, b;
	json_error_t jerr;
	json_t *j;
	int ra, rb;

	j = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
	if (j == NULL)
		fail_msg("%s: jansson refuses: %s", what, jerr.text);
	memset(&a, 0x5a, sizeof(a));
	memset(&b, 0xa5, sizeof(b));
	ra = keys_extract(j, &a);
	rb = keys_extract_raw(text, len, &b);
	json_decref(j);
	expect_same(what, &a, &b, ra, rb);
	/* Text jansson accepts is valid JSON: the no-recheck variant agrees. */
	memset(&b, 0xa5, sizeof(b));
	rb = keys_extract_raw_valid(text, len, &b);
	expect_same(what, &a, &b, ra, rb);
}

static void test_keys_samples(void **state)
{
	static const size_t flags[] = { JSON_COMPACT, 0, JSON_INDENT(2),
	    JSON_ENSURE_ASCII | JSON_COMPACT };
	size_t i, f;

	for (i = 0; i < sizeof(key_samples) / sizeof(key_samples[0]); i++) {
		json_t *j = json_loads(key_samples[i], JSON_DECODE_ANY, NULL);
		char *d;

		compare_text(key_samples[i], key_samples[i], strlen(key_samples[i]));
		assert_non_null(j);
		for (f = 0; f < sizeof(flags) / sizeof(flags[0]); f++) {
			assert_non_null(d = json_dumps(j, flags[f] | JSON_ENCODE_ANY));
			compare_text(d, d, strlen(d));
			free(d);
		}
		json_decref(j);
	}
}

static void test_keys_raw_malformed(void **state)
{
	static const char *const bad[] = {
		"", "{", "{\"update_id\":1", "{\"update_id\":1,\"poll\":{}} x",
		"{\"update_id\":1,\"poll\":{}}{}", "{\"update_id\":01}",
		"{\"update_id\":1,\"poll\":{\"a\":\"\\x\"}}",
		"{\"update_id\":1,\"x\":[1,],\"poll\":{}}",
		"{\"update_id\":9223372036854775808,\"poll\":{}}",
		/* Well-formed, but a worker's jansson refuses it. */
		"{\"update_id\":1,\"poll\":{\"a\":\"\\u0000\"}}",
		"{\"update_id\":1,\"\\u0000\":0,\"poll\":{}}",
		"{\"update_id\":1,\"poll\":{\"a\":1e400}}",
		"{\"update_id\":1,\"x\":99999999999999999999,\"poll\":{}}",
	};
	struct update_keys k;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&k, 0xa5, sizeof(k));
		if (keys_extract_raw(bad[i], strlen(bad[i]), &k) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_int_equal(k.type, UPD_UNKNOWN);
		assert_int_equal(k.has_chat | k.has_user | k.has_thread, 0);
	}
	/* Every proper prefix of an update is malformed (trailing spaces aside). */
	for (i = 0; i < strlen(key_samples[0]); i++)
		if (keys_extract_raw(key_samples[0], i, &k) != -1)
			fail_msg("accepted a prefix of %zu bytes", i);
}

/* ---- random updates ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static unsigned rn(unsigned n)
{
	return (unsigned)(rnd() % n);
}

/* UTF-8 text with characters that need escapes and every sequence length. */
static json_t *rand_text(size_t maxlen)
{
	static const char *const pieces[] = {
		"a", "Z", " ", "0", "\"", "\\", "/", "\n", "\t", "\x01", "\x1f", "\x7f",
		"\xc3\xa9", "\xd0\xb6", "\xe4\xb8\xad", "\xe2\x80\xa8", "\xef\xbf\xbf",
		"\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf", "}", "]", "{\"id\":1}",
	};
	char buf[2048];
	size_t len = 0, n = maxlen ? rn((unsigned)maxlen) : 0, i;

	for (i = 0; i < n; i++) {
		const char *p = pieces[rn(sizeof(pieces) / sizeof(pieces[0]))];
		size_t l = strlen(p);

		if (len + l >= sizeof(buf))
			break;
		memcpy(buf + len, p, l);
		len += l;
	}
	return json_stringn(buf, len);
}

/* Mostly integers, but every other JSON kind an id could turn up as. */
static json_t *rand_id(void)
{
	switch (rn(16)) {
	case 0: return json_integer(INT64_MAX);
	case 1: return json_integer(INT64_MIN);
	case 2: return json_integer(0);
	case 3: return json_integer(-1001234567890LL - (json_int_t)rn(1000));
	case 4: return json_string("-1001234567890");
	case 5: return json_real(7.5);
	case 6: return json_real(1e300);
	case 7: return json_real(5.0);
	case 8: return json_real(-1e-300);
	case 9: return json_null();
	case 10: return json_true();
	case 11: return rn(2) ? json_object() : json_pack("{s:i}", "id", 3);
	case 12: return json_pack("[i]", 4);
	default: return json_integer((json_int_t)(rnd() >> rn(64)) *
	    (rn(2) ? 1 : -1));
	}
}

static const char *const pool_keys[] = {
	"text", "date", "message_id", "x", "", "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87",
	"a\"b", "a\\b", "id ", "ID", "chat_", "from\n", "\xf0\x9f\x98\x80",
};

static void add_noise(json_t *o, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		const char *k = pool_keys[rn(sizeof(pool_keys) / sizeof(pool_keys[0]))];

		switch (rn(5)) {
		case 0: json_object_set_new(o, k, rand_text(40)); break;
		case 1: json_object_set_new(o, k, rand_id()); break;
		case 2: json_object_set_new(o, k, json_pack("[{s:o},s]", "id",
		    rand_id(), "z")); break;
		case 3: json_object_set_new(o, k, json_pack("{s:{s:o}}", "chat",
		    "id", rand_id())); break;
		default: json_object_set_new(o, k, rand_text(200)); break;
		}
	}
}

/* {"id": <rand_id>, noise} or occasionally not an object at all. */
static json_t *rand_holder(void)
{
	json_t *o;

	if (rn(12) == 0)
		return rn(2) ? rand_id() : rand_text(5);
	o = json_object();
	add_noise(o, rn(3));
	if (rn(8) != 0)
		json_object_set_new(o, "id", rand_id());
	add_noise(o, rn(3));
	return o;
}

static json_t *rand_body(void)
{
	static const char *const fields[] = {
		"chat", "from", "user", "voter_chat", "message_thread_id", "message",
		"boost", "source", "sender_chat",
	};
	json_t *o, *v;
	unsigned i, n;

	if (rn(16) == 0)
		return rn(2) ? json_null() : rand_text(8);
	o = json_object();
	n = 1 + rn(7);
	for (i = 0; i < n; i++) {
		const char *f = fields[rn(sizeof(fields) / sizeof(fields[0]))];

		add_noise(o, rn(2));
		if (strcmp(f, "message_thread_id") == 0)
			v = rand_id();
		else if (strcmp(f, "message") == 0)
			v = json_pack("{s:o,s:o,s:o}", "chat", rand_holder(),
			    "message_thread_id", rand_id(), "text", rand_text(300));
		else if (strcmp(f, "boost") == 0 || strcmp(f, "source") == 0)
			v = rn(3) ? json_pack("{s:{s:o}}", "user", "id", rand_id()) :
			    json_pack("{s:{s:{s:o}}}", "source", "user", "id",
			    rand_id());
		else
			v = rand_holder();
		json_object_set_new(o, f, v);
	}
	return o;
}

static json_t *rand_update(void)
{
	json_t *u = json_object();
	unsigned i, n = 1 + rn(3);

	if (rn(3) == 0)
		add_noise(u, rn(2));
	if (rn(20) != 0 && rn(3) != 0)
		json_object_set_new(u, "update_id", rn(20) ? json_integer(
		    (json_int_t)(rnd() >> 2)) : rand_id());
	for (i = 0; i < n; i++) {
		const char *name;

		if (rn(5) == 0)
			name = rn(2) ? "future_update" : "unknown";
		else
			name = keys_type_name((enum update_type)(1 +
			    rn(UPD__COUNT - 1)));
		json_object_set_new(u, name, rand_body());
	}
	if (json_object_get(u, "update_id") == NULL && rn(20) != 0)
		json_object_set_new(u, "update_id", json_integer(rn(1000000)));
	return u;
}

/*
 * Rewrite some characters inside strings as escapes jansson would not emit
 * ("\u0061", "\/"), so escaped keys reach keys_extract_raw().
 */
static char *reescape(const char *s)
{
	size_t len = strlen(s), i, o = 0;
	char *out = malloc(len * 6 + 1);
	int in = 0;

	assert_non_null(out);
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (in && c == '\\') {
			size_t n = s[i + 1] == 'u' ? 6 : 2;

			memcpy(out + o, s + i, n);
			o += n;
			i += n - 1;
			continue;
		}
		if (c == '"')
			in = !in;
		if (in && c != '"' && (unsigned char)c < 0x80 && rn(4) == 0) {
			if (c == '/')
				o += (size_t)sprintf(out + o, "\\/");
			else
				o += (size_t)sprintf(out + o, "\\u%04X", c);
			continue;
		}
		out[o++] = c;
	}
	out[o] = '\0';
	return out;
}

static void test_keys_random(void **state)
{
	static const size_t flags[] = { JSON_COMPACT, 0, JSON_INDENT(1),
	    JSON_INDENT(3) | JSON_ENSURE_ASCII, JSON_COMPACT | JSON_ENSURE_ASCII };
	char what[64];
	int i;

	for (i = 0; i < 5000; i++) {
		json_t *u = rand_update(), *back;
		char *d = json_dumps(u, flags[rn(sizeof(flags) / sizeof(flags[0]))]);
		char *r;

		assert_non_null(d);
		snprintf(what, sizeof(what), "random update %d", i);
		compare_text(what, d, strlen(d));
		r = reescape(d);
		back = json_loads(r, 0, NULL);
		if (back == NULL || !json_equal(back, u))
			fail_msg("reescape broke %s", d);
		json_decref(back);
		compare_text(what, r, strlen(r));
		free(r);
		free(d);
		json_decref(u);
	}
}

/* Split random answers: compact elements are byte-exact, indented ones equal. */
static void test_split_random(void **state)
{
	int i, k, ok;

	for (i = 0; i < 300; i++) {
		json_t *arr = json_array(), *ans;
		struct split s = { 0 };
		size_t f = rn(2) ? JSON_COMPACT : JSON_INDENT(2) | JSON_ENSURE_ASCII;
		char *body;
		int n = (int)rn(9);

		for (k = 0; k < n; k++)
			json_array_append_new(arr, rn(10) ? rand_update() : rand_id());
		ans = json_pack("{s:b,s:o}", "ok", 1, "result", arr);
		if (rn(2))
			json_object_set_new(ans, "description", rand_text(20));
		assert_non_null(body = json_dumps(ans, f));
		assert_int_equal(jscan_result_array(body, strlen(body), &ok, collect,
		    &s), 0);
		assert_int_equal(ok, 1);
		assert_int_equal(s.n, n);
		for (k = 0; k < n; k++) {
			json_t *e = json_array_get(arr, (size_t)k), *back;

			if (f == JSON_COMPACT) {
				char *d = json_dumps(e, f | JSON_ENCODE_ANY);

				assert_int_equal(s.len[k], strlen(d));
				assert_memory_equal(s.elem[k], d, s.len[k]);
				free(d);
			}
			back = json_loadb(s.elem[k], s.len[k], JSON_DECODE_ANY, NULL);
			assert_non_null(back);
			assert_true(json_equal(back, e));
			json_decref(back);
		}
		free(body);
		json_decref(ans);
	}
}

/* jscan_get_valid() on invalid bytes: any answer, but no read out of bounds. */
static void get_valid_garbage(const char *s, size_t len)
{
	static const char *const path[] = { "result", "message", "chat" };
	const char *v;
	size_t vl;
	char *b = malloc(len ? len : 1);

	assert_non_null(b);
	memcpy(b, s, len);
	if (jscan_get_valid(b, len, path, 3, &v, &vl) == 1)
		assert_true(v >= b && v + vl <= b + len);
	free(b);
}

/* Mutated documents: jscan and jansson agree on validity. */
static void test_mutations(void **state)
{
	static const char alphabet[] = "{}[]\",:\\u0123456789.eE+-tfnrl \n\xc3\xa9\x80";
	/* Values one digit away from what jansson refuses. */
	static const char edge_body[] = "{\"ok\":true,\"result\":[{\"update_id\":"
	    "9223372036854775807,\"n\":-9223372036854775808,\"r\":"
	    "1.7976931348623157e308,\"s\":\"\\u0001\\u0010\",\"e\":-1e308,"
	    "\"z\":0e9,\"\\u0101\":1}]}";
	char buf[sizeof(sample_body) + 8];
	int i, m, agree = 0, refused = 0;

	for (i = 0; i < 40000; i++) {
		const char *base = i & 1 ? edge_body : sample_body;
		size_t len = strlen(base), pos;
		json_error_t jerr;
		json_t *j;
		int mine, theirs;

		memcpy(buf, base, len);
		for (m = 1 + (int)rn(3); m > 0; m--) {
			pos = rn((unsigned)len);
			switch (rn(3)) {
			case 0:
				buf[pos] = alphabet[rn(sizeof(alphabet) - 1)];
				break;
			case 1:
				memmove(buf + pos, buf + pos + 1, len - pos - 1);
				len--;
				break;
			default:
				if (len + 1 >= sizeof(buf))
					break;
				memmove(buf + pos + 1, buf + pos, len - pos);
				buf[pos] = alphabet[rn(sizeof(alphabet) - 1)];
				len++;
			}
		}
		mine = whole_valid_exact(buf, len);
		get_valid_garbage(buf, len);
		j = json_loadb(buf, len, JSON_DECODE_ANY, &jerr);
		theirs = j != NULL;
		json_decref(j);
		if (mine == theirs) {
			agree++;
			refused += !mine;
			continue;
		}
		fail_msg("mutation disagrees (jscan %d, jansson %d: %s): %.*s", mine,
		    theirs, theirs ? "" : jerr.text, (int)len, buf);
	}
	print_message("mutations: %d agree (%d refused by both)\n", agree, refused);
}

/* ---- timing, printed, not asserted ---- */

struct timing {
	long n;
	int64_t sum;
};

static int raw_item(void *arg, const char *elem, size_t len, int err)
{
	struct timing *t = arg;
	struct update_keys k;

	if (keys_extract_raw(elem, len, &k) != 0)
		return -1;
	t->n++;
	t->sum += k.chat_id + k.user_id + k.update_id;
	return 0;
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static json_t *realistic_update(int i)
{
	static const char *const words[] = {
		"\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82", "hello",
		"\xe4\xbd\xa0\xe5\xa5\xbd", "\xf0\x9f\x98\x80", "\"quoted\"", "world",
		"\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7", "line\n",
	};
	char text[400];
	size_t len = 0, w;

	while (len < 300) {
		w = rn(sizeof(words) / sizeof(words[0]));
		len += (size_t)snprintf(text + len, sizeof(text) - len, "%s ",
		    words[w]);
	}
	return json_pack("{s:I,s:{s:I,s:{s:I,s:b,s:s,s:s,s:s},s:{s:I,s:s,s:s,s:b},"
	    "s:I,s:I,s:s,s:[{s:s,s:i,s:i}]}}",
	    "update_id", (json_int_t)900000000 + i, "message", "message_id",
	    (json_int_t)1000 + i, "from", "id", (json_int_t)100000 + i % 7,
	    "is_bot", 0, "first_name", "\xd0\x90\xd0\xbd\xd0\xbd\xd0\xb0",
	    "username", "ann_user", "language_code", "ru", "chat", "id",
	    (json_int_t)-1001234567890LL, "title", "Group \xe2\x9c\x93", "type",
	    "supergroup", "is_forum", 1, "message_thread_id", (json_int_t)77,
	    "date", (json_int_t)1700000000 + i, "text", text, "entities",
	    "type", "bold", "offset", 0, "length", 5);
}

/* Telegram sends non-ASCII text both raw and as \uXXXX escapes: time both. */
static void time_answer(size_t flags, const char *what)
{
	enum { UPDATES = 100, ROUNDS = 300 };
	json_t *arr = json_array(), *ans;
	struct timing t = { 0 };
	double t0, t1, t2;
	char *body;
	size_t len;
	int r, ok;

	rng_state = 0x2545f4914f6cdd1dULL;
	for (r = 0; r < UPDATES; r++)
		json_array_append_new(arr, realistic_update(r));
	ans = json_pack("{s:b,s:o}", "ok", 1, "result", arr);
	body = json_dumps(ans, flags);
	assert_non_null(body);
	len = strlen(body);
	json_decref(ans);

	t0 = now_us();
	for (r = 0; r < ROUNDS; r++) {
		json_t *j = json_loadb(body, len, 0, NULL), *u;
		size_t i;

		assert_non_null(j);
		json_array_foreach(json_object_get(j, "result"), i, u) {
			struct update_keys k;
			char *d;

			assert_int_equal(keys_extract(u, &k), 0);
			d = json_dumps(u, JSON_COMPACT);
			t.sum += k.chat_id + (int64_t)strlen(d);
			free(d);
		}
		json_decref(j);
	}
	t1 = now_us();
	for (r = 0; r < ROUNDS; r++)
		assert_int_equal(jscan_result_array(body, len, &ok, raw_item, &t), 0);
	t2 = now_us();
	assert_int_equal(t.n, (long)UPDATES * ROUNDS);
	print_message("timing (%s): %d updates, %zu bytes (%zu per update): "
	    "jansson parse+keys_extract+dumps %.2f us/update, jscan "
	    "split+keys_extract_raw %.2f us/update\n", what, UPDATES, len,
	    len / UPDATES, (t1 - t0) / (UPDATES * ROUNDS),
	    (t2 - t1) / (UPDATES * ROUNDS));
	free(body);
}

static void test_timing(void **state)
{
	time_answer(JSON_COMPACT, "raw UTF-8");
	time_answer(JSON_COMPACT | JSON_ENSURE_ASCII, "\\u escapes");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_skip_table),
		cmocka_unit_test(test_skip_after),
		cmocka_unit_test(test_skip_positions),
		cmocka_unit_test(test_skip_truncated),
		cmocka_unit_test(test_refusal_codes),
		cmocka_unit_test(test_real_limit),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_split_table),
		cmocka_unit_test(test_split_stop),
		cmocka_unit_test(test_get),
		cmocka_unit_test(test_int64),
		cmocka_unit_test(test_first_key),
		cmocka_unit_test(test_keys_unescaped),
		cmocka_unit_test(test_keys_samples),
		cmocka_unit_test(test_keys_raw_malformed),
		cmocka_unit_test(test_keys_random),
		cmocka_unit_test(test_split_random),
		cmocka_unit_test(test_mutations),
		cmocka_unit_test(test_timing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
