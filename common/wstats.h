/* Bot API call counters: counted per worker, reported in STATS frames, summed by the master. */
#ifndef TGRUN_WSTATS_H
#define TGRUN_WSTATS_H

#include <jansson.h>

enum wstats_outcome {
	WS_OK, WS_API_ERROR, WS_NETWORK_ERROR, WS_TIMEOUT, WS_CANCELLED, WS__COUNT
};

/* Names of enum wstats_outcome, as in the STATS payload and the metrics. */
extern const char *const wstats_outcome_names[WS__COUNT];

struct wstats;

struct wstats *wstats_new(void);
void wstats_free(struct wstats *s);
/* Count one attempt of `method`; is_429 when the Bot API answered 429. */
void wstats_api(struct wstats *s, const char *method, enum wstats_outcome o,
    int is_429);
/*
 * The counts since the last call as the FRAME_STATS_API payload (a new
 * reference), and reset them; NULL when nothing was counted.
 */
json_t *wstats_take(struct wstats *s);

#endif
