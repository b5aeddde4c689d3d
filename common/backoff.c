/* Exponential backoff with jitter, capped, reset on success. */
#include "backoff.h"

void backoff_init(struct backoff *b, int64_t base_ms, int64_t cap_ms, uint64_t seed)
{
	b->base_ms = base_ms > 0 ? base_ms : 1;
	b->cap_ms = cap_ms > b->base_ms ? cap_ms : b->base_ms;
	b->cur_ms = 0;
	b->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Uniform in [bound/2, bound]. */
static int64_t jitter(int64_t bound, uint64_t *rng)
{
	int64_t half = bound / 2;

	return half + (int64_t)(xorshift(rng) % (uint64_t)(bound - half + 1));
}

int64_t backoff_next(struct backoff *b)
{
	b->cur_ms = b->cur_ms == 0 ? b->base_ms : b->cur_ms * 2;
	if (b->cur_ms > b->cap_ms)
		b->cur_ms = b->cap_ms;
	return jitter(b->cur_ms, &b->rng);
}

int64_t backoff_delay(int64_t base_ms, int64_t cap_ms, int n, uint64_t *rng)
{
	int64_t bound = base_ms;

	if (base_ms <= 0)
		return 0;
	while (--n > 0 && bound < cap_ms)
		bound *= 2;
	if (bound > cap_ms)
		bound = cap_ms > base_ms ? cap_ms : base_ms;
	if (*rng == 0)
		*rng = 0x9e3779b97f4a7c15ull;
	return jitter(bound, rng);
}

void backoff_reset(struct backoff *b)
{
	b->cur_ms = 0;
}
