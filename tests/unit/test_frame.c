/* Unit tests for common/frame.c: encoding, decoding and malformed frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "frame.h"

static size_t build(uint8_t *buf, uint8_t type, uint16_t flags, uint64_t seq,
    uint32_t arg, const char *payload)
{
	struct frame f = { .type = type, .flags = flags, .seq = seq, .arg = arg,
	    .len = (uint32_t)(payload ? strlen(payload) : 0) };

	frame_pack_hdr(&f, buf);
	if (payload)
		memcpy(buf + FRAME_HDR_LEN, payload, f.len);
	return FRAME_HDR_LEN + f.len;
}

static void test_roundtrip(void **state)
{
	uint8_t buf[128];
	size_t n = build(buf, FRAME_UPDATE, 7, 123456789012ull, 3, "{\"update_id\":1}");
	struct frame f;
	const char *why = NULL;

	assert_int_equal(frame_decode(buf, n, &f, &why), 1);
	assert_int_equal(f.type, FRAME_UPDATE);
	assert_int_equal(f.flags, 7);
	assert_true(f.seq == 123456789012ull);
	assert_int_equal(f.arg, 3);
	assert_int_equal(f.len, 15);
	assert_memory_equal(f.payload, "{\"update_id\":1}", 15);
	assert_int_equal(frame_size(&f), n);
}

static void test_incomplete(void **state)
{
	uint8_t buf[128];
	size_t n = build(buf, FRAME_DONE, 0, 1, 0, "abc");
	struct frame f;
	const char *why = NULL;

	/* Every strict prefix is "need more", never an error or a frame. */
	for (size_t i = 0; i < n; i++)
		assert_int_equal(frame_decode(buf, i, &f, &why), 0);
	assert_int_equal(frame_decode(buf, n, &f, &why), 1);
}

static void test_bad_version(void **state)
{
	uint8_t buf[64];
	size_t n = build(buf, FRAME_PING, 0, 1, 0, NULL);
	struct frame f;
	const char *why = NULL;

	buf[0] = FRAME_VERSION + 1;
	assert_int_equal(frame_decode(buf, n, &f, &why), -1);
	assert_non_null(strstr(why, "version"));
}

static void test_unknown_type(void **state)
{
	uint8_t buf[64];
	struct frame f;
	const char *why = NULL;
	static const uint8_t bad[] = { 0, 7, 15, 21, 99, 255 };

	for (size_t i = 0; i < sizeof(bad); i++) {
		size_t n = build(buf, bad[i], 0, 1, 0, NULL);

		assert_int_equal(frame_decode(buf, n, &f, &why), -1);
		assert_non_null(strstr(why, "type"));
	}
}

static void test_too_long(void **state)
{
	uint8_t buf[FRAME_HDR_LEN];
	struct frame f = { .type = FRAME_UPDATE, .len = FRAME_MAX_PAYLOAD + 1 };
	const char *why = NULL;

	frame_pack_hdr(&f, buf);
	/* Refused from the header alone, before any payload arrives. */
	assert_int_equal(frame_decode(buf, sizeof(buf), &f, &why), -1);
	assert_non_null(strstr(why, "long"));
}

static void test_reserved_nonzero(void **state)
{
	uint8_t buf[64];
	size_t n = build(buf, FRAME_PONG, 0, 1, 0, NULL);
	struct frame f;
	const char *why = NULL;

	buf[22] = 1;
	assert_int_equal(frame_decode(buf, n, &f, &why), -1);
}

static void test_evbuffer_stream(void **state)
{
	struct evbuffer *b = evbuffer_new();
	struct frame f;
	const char *why = NULL;
	uint64_t expect = 1;

	/* Many frames, fed one byte at a time, come out whole and in order. */
	struct evbuffer *src = evbuffer_new();
	for (int i = 1; i <= 50; i++)
		assert_int_equal(frame_write(src, FRAME_UPDATE, 0, (uint64_t)i,
		    (uint32_t)i, "payload", (size_t)(i % 8)), 0);
	while (evbuffer_get_length(src) > 0) {
		uint8_t c;

		evbuffer_remove(src, &c, 1);
		evbuffer_add(b, &c, 1);
		while (frame_read(b, &f, &why) == 1) {
			assert_true(f.seq == expect);
			assert_int_equal(f.len, expect % 8);
			frame_consume(b, &f);
			expect++;
		}
	}
	assert_true(expect == 51);
	assert_int_equal(evbuffer_get_length(b), 0);
	evbuffer_free(src);
	evbuffer_free(b);
}

static void test_evbuffer_garbage(void **state)
{
	struct evbuffer *b = evbuffer_new();
	struct frame f;
	const char *why = NULL;
	uint8_t junk[FRAME_HDR_LEN];

	memset(junk, 0xab, sizeof(junk));
	evbuffer_add(b, junk, sizeof(junk));
	assert_int_equal(frame_read(b, &f, &why), -1);
	evbuffer_free(b);
}

static void test_random_bytes_never_crash(void **state)
{
	uint8_t buf[256];
	struct frame f;
	const char *why;
	unsigned seed = 12345;

	for (int round = 0; round < 100000; round++) {
		size_t n = (size_t)(rand_r(&seed) % sizeof(buf));
		int r;

		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)rand_r(&seed);
		if (n > 0 && round % 2)
			buf[0] = FRAME_VERSION;
		why = NULL;
		r = frame_decode(buf, n, &f, &why);
		assert_true(r >= -1 && r <= 1);
		if (r == 1)
			assert_true(frame_size(&f) <= n);
		if (r == -1)
			assert_non_null(why);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_incomplete),
		cmocka_unit_test(test_bad_version),
		cmocka_unit_test(test_unknown_type),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_reserved_nonzero),
		cmocka_unit_test(test_evbuffer_stream),
		cmocka_unit_test(test_evbuffer_garbage),
		cmocka_unit_test(test_random_bytes_never_crash),
	};
	return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
