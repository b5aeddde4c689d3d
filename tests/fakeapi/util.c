/* Small helpers of the fake Bot API: clock, PRNG, hashing, JSON output to evbuffers. */
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct timespec util_t0;

void
util_clock_init(void)
{
	clock_gettime(CLOCK_MONOTONIC, &util_t0);
}

double
util_now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - util_t0.tv_sec) * 1000.0 +
	    (double)(t.tv_nsec - util_t0.tv_nsec) / 1e6;
}

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void
util_rng_seed(struct util_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static inline uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t
util_rng_next(struct util_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

uint64_t
util_rng_below(struct util_rng *r, uint64_t n)
{
	return n ? util_rng_next(r) % n : 0;
}

double
util_rng_unit(struct util_rng *r)
{
	return (double)(util_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t
util_hash_bytes(const void *p, size_t n)
{
	const unsigned char *c = p;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++) {
		h ^= c[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

uint64_t
util_hash_u64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static int
dump_cb(const char *buffer, size_t size, void *data)
{
	return evbuffer_add(data, buffer, size);
}

int
util_json_to_evbuffer(struct evbuffer *buf, const json_t *json)
{
	static char scratch[16384];
	size_t flags = JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(10);
	size_t n = json_dumpb(json, scratch, sizeof(scratch), flags);

	/* one copy instead of an evbuffer_add per JSON token */
	if (n > 0 && n <= sizeof(scratch))
		return evbuffer_add(buf, scratch, n);
	return json_dump_callback(json, dump_cb, buf, flags);
}

void
util_evbuffer_add_json_string(struct evbuffer *buf, const char *s, size_t n)
{
	json_t *j = json_stringn_nocheck(s, n);

	if (j == NULL) {
		evbuffer_add(buf, "null", 4);
		return;
	}
	util_json_to_evbuffer(buf, j);
	json_decref(j);
}

/*
 * The whole of s as a number: strtoll (base 10) into *i when i is set, else
 * strtod into *d; -1 for NULL, empty, trailing text or out of range.
 */
static int
parse_whole(const char *s, long long *i, double *d)
{
	char *end;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	if (i != NULL)
		*i = strtoll(s, &end, 10);
	else
		*d = strtod(s, &end);
	if (errno != 0 || *end != '\0')
		return -1;
	return 0;
}

int
util_parse_i64(const char *s, long long *out)
{
	return parse_whole(s, out, NULL);
}

int
util_parse_double(const char *s, double *out)
{
	return parse_whole(s, NULL, out);
}

int
util_json_number(const json_t *v, double *out)
{
	if (json_is_number(v)) {
		*out = json_number_value(v);
		return 0;
	}
	if (json_is_string(v))
		return util_parse_double(json_string_value(v), out);
	if (json_is_boolean(v)) {
		*out = json_is_true(v) ? 1 : 0;
		return 0;
	}
	return -1;
}

int
util_json_int(const json_t *v, long long *out)
{
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 0;
	}
	if (json_is_string(v))
		return util_parse_i64(json_string_value(v), out);
	return -1;
}

static void
oom(void)
{
	fprintf(stderr, "fakeapi: out of memory\n");
	abort();
}

void *
util_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		oom();
	return p;
}

void *
util_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		oom();
	return p;
}

void *
util_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (p == NULL)
		oom();
	return p;
}

char *
util_xstrndup(const char *s, size_t n)
{
	char *p = util_xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}
