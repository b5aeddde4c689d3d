/* Exponential backoff with jitter, capped, reset on success. */
#ifndef TGRUN_BACKOFF_H
#define TGRUN_BACKOFF_H

#include <stdint.h>

struct backoff {
	int64_t base_ms;
	int64_t cap_ms;
	int64_t cur_ms;		/* next upper bound; 0 = reset */
	uint64_t rng;
};

void backoff_init(struct backoff *b, int64_t base_ms, int64_t cap_ms, uint64_t seed);
/* Next delay: uniform in [cur/2, cur] ("equal jitter"); cur doubles up to cap. */
int64_t backoff_next(struct backoff *b);
void backoff_reset(struct backoff *b);
/*
 * The delay before retry `n` (1, 2, ...) of a fresh backoff from `base_ms`
 * capped at `cap_ms`, with the same jitter; `*rng` is the caller's state.
 * 0 when base_ms <= 0.
 */
int64_t backoff_delay(int64_t base_ms, int64_t cap_ms, int n, uint64_t *rng);

#endif
