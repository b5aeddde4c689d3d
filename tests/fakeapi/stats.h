/* Counters and per-update echo tracking (loss, duplicates, order, latency) with JSON views. */
#ifndef FAKEAPI_STATS_H
#define FAKEAPI_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <event2/buffer.h>

#include "stream.h"

struct stats;

struct stats *stats_new(void);
void stats_free(struct stats *st);

/* Method names are interned once: O(1) counters per call. -1 if the table is full. */
int stats_method_intern(struct stats *st, const char *name, size_t len);
const char *stats_method_name(const struct stats *st, int mid);
int stats_method_find(const struct stats *st, const char *name);

void stats_count_call(struct stats *st, int mid);
void stats_count_response(struct stats *st, int code);
void stats_count_fault(struct stats *st, int mid);
void stats_count_conflict(struct stats *st);
/* A TCP connection was accepted. */
void stats_count_connection(struct stats *st);
/* A connection carried its first Bot API call (opened 1), or closed (0). */
void stats_count_api_connection(struct stats *st, int opened);
void stats_concurrent_inc(struct stats *st);
void stats_concurrent_dec(struct stats *st);
void stats_count_confirmed(struct stats *st, size_t n);

/* Update u (index idx) was returned by getUpdates at now_ms. */
void stats_handout(struct stats *st, struct stream_update *u, double now_ms);
/* A call of method mid echoed update idx at now_ms. */
void stats_echo(struct stats *st, struct stream *s, size_t idx, int mid, double now_ms);

/* JSON views, appended to buf. */
void stats_dump(struct stats *st, struct stream *s, const char *webhook,
    struct evbuffer *buf);
void stats_echoes_json(struct stats *st, struct stream *s, size_t idx,
    struct evbuffer *buf);
void stats_chatlog_json(struct stats *st, struct stream *s, int64_t chat_id,
    struct evbuffer *buf);

/* Zero counters and per-update echo state; the stream itself stays. */
void stats_reset(struct stats *st, struct stream *s);

#endif
