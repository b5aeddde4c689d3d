/* Prometheus text metrics: counters, gauges and histograms, served over HTTP. */
#ifndef TGRUN_METRICS_H
#define TGRUN_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "status.h"

struct event_base;
struct metrics;

/*
 * Histograms of its own; counters and gauges from ops->snapshot at each
 * scrape. Nothing is served until metrics_listen().
 */
struct metrics *metrics_new(struct event_base *base, const struct status_ops *ops)
	__attribute__((warn_unused_result));
void metrics_free(struct metrics *mt);

/*
 * Serve GET /metrics on `listen` ("HOST:PORT" or "[V6]:PORT"; port 0 picks a
 * free one) on the master's event base (metrics_http.h), and log the address
 * bound. 0 or -1 with one line in `err`.
 */
int metrics_listen(struct metrics *mt, const char *listen, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* A worker's FRAME_STATS_API payload; -1 if it is not one (nothing counted). */
int metrics_add_api(struct metrics *mt, const json_t *payload);
/* Handler run time from a DONE frame. */
void metrics_observe_handler(struct metrics *mt, uint32_t ms);
/* Time from fetch to the first dispatch of an update. */
void metrics_observe_dispatch(struct metrics *mt, int64_t ms);

struct evbuffer;
/* The whole text exposition into `out` (also used by tests). */
void metrics_render(struct metrics *mt, struct evbuffer *out);

#endif
