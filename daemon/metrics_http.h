/* Serving GET /metrics: HTTP/1.x, one request per connection, bounded in number, size and time. */
#ifndef TGRUN_METRICS_HTTP_H
#define TGRUN_METRICS_HTTP_H

#include <stddef.h>

struct event_base;
struct metrics;
struct metrics_http;

/* Scrapes served at once; more wait in the listen backlog. */
#define METRICS_HTTP_MAX_CONNS 64

/*
 * Listen on `listen` ("HOST:PORT" or "[V6]:PORT", as [metrics] listen
 * accepts it; port 0 picks a free one) and answer GET and HEAD /metrics
 * with metrics_render(mt). Logs the address bound, with a warning when it
 * is not loopback. NULL with one line in `err`.
 */
struct metrics_http *metrics_http_new(struct event_base *base, struct metrics *mt,
    const char *listen, char *err, size_t errlen) __attribute__((warn_unused_result));
/* Close the listening socket and every connection. */
void metrics_http_free(struct metrics_http *h);

#endif
