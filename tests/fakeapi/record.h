/* The call record: every non-getUpdates call with its parameters, compact and append-only. */
#ifndef FAKEAPI_RECORD_H
#define FAKEAPI_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <event2/buffer.h>

#include "stats.h"

struct record;

/* Keep at most limit calls; seq numbers keep counting past it. */
struct record *record_new(size_t limit);
void record_free(struct record *r);
/* Keep a call (params: JSON object text; via: the client's name or ""). Returns its seq (from 1). */
uint64_t record_add(struct record *r, int mid, const char *params, size_t len, double t_ms,
    const char *via);
/* {"calls":[...],"next":SEQ,"total":N}: calls with seq > since, method mid (< 0: all),
 * at most limit of them; names come from st. */
void record_json(const struct record *r, const struct stats *st, int mid, uint64_t since,
    size_t limit, struct evbuffer *buf);
void record_reset(struct record *r);

#endif
