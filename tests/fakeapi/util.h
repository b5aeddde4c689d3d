/* Small helpers of the fake Bot API: clock, PRNG, hashing, JSON output to evbuffers. */
#ifndef FAKEAPI_UTIL_H
#define FAKEAPI_UTIL_H

#include <stdint.h>
#include <stddef.h>
#include <event2/buffer.h>
#include <jansson.h>

/* Milliseconds since util_clock_init() on the monotonic clock, sub-ms precision. */
void util_clock_init(void);
double util_now_ms(void);

/* splitmix64-seeded xoshiro256** generator: deterministic per seed. */
struct util_rng {
	uint64_t s[4];
};
void util_rng_seed(struct util_rng *r, uint64_t seed);
uint64_t util_rng_next(struct util_rng *r);
/* Uniform integer in [0, n) (n > 0) and uniform double in [0, 1). */
uint64_t util_rng_below(struct util_rng *r, uint64_t n);
double util_rng_unit(struct util_rng *r);

uint64_t util_hash_bytes(const void *p, size_t n);
uint64_t util_hash_u64(uint64_t x);

/* Append json as compact text to buf; returns 0 or -1. */
int util_json_to_evbuffer(struct evbuffer *buf, const json_t *json);
/* Append s as a JSON string literal (with quotes). */
void util_evbuffer_add_json_string(struct evbuffer *buf, const char *s, size_t n);

/* Parse a decimal int64 (whole string); returns 0 or -1. */
int util_parse_i64(const char *s, long long *out);
/* Parse a double (whole string); returns 0 or -1. */
int util_parse_double(const char *s, double *out);
/* A JSON integer, real or numeric string as a double / int64; 0 or -1. */
int util_json_number(const json_t *v, double *out);
int util_json_int(const json_t *v, long long *out);

void *util_xmalloc(size_t n);
void *util_xcalloc(size_t n, size_t size);
void *util_xrealloc(void *p, size_t n);
char *util_xstrndup(const char *s, size_t n);

#endif
