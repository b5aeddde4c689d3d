/* The call record: every non-getUpdates call with its parameters, compact and append-only. */
#include "record.h"
#include "util.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK (1u << 20)

struct rec {
	uint32_t mid;
	uint32_t len;
	double t_ms;
	const char *params;
	const char *via;	/* NULL: none */
};

/* Records are appended and never freed one by one: a bump arena keeps it cheap. */
struct arena_chunk {
	struct arena_chunk *next;
	size_t used, cap;
	char data[];
};

struct record {
	struct rec *rec;	/* seq k is rec[k - 1] */
	size_t n, cap, limit;
	uint64_t seq;
	struct arena_chunk *arena;
};

struct record *
record_new(size_t limit)
{
	struct record *r = util_xcalloc(1, sizeof(*r));

	r->limit = limit;
	return r;
}

static void
arena_free(struct record *r)
{
	struct arena_chunk *c, *n;

	for (c = r->arena; c != NULL; c = n) {
		n = c->next;
		free(c);
	}
	r->arena = NULL;
}

void
record_free(struct record *r)
{
	if (r == NULL)
		return;
	arena_free(r);
	free(r->rec);
	free(r);
}

void
record_reset(struct record *r)
{
	arena_free(r);
	r->n = 0;
	r->seq = 0;
}

static const char *
arena_copy(struct record *r, const char *p, size_t len)
{
	struct arena_chunk *c = r->arena;
	char *out;

	if (c == NULL || c->cap - c->used < len + 1) {
		size_t cap = len + 1 > ARENA_CHUNK ? len + 1 : ARENA_CHUNK;

		c = util_xmalloc(sizeof(*c) + cap);
		c->cap = cap;
		c->used = 0;
		c->next = r->arena;
		r->arena = c;
	}
	out = c->data + c->used;
	memcpy(out, p, len);
	out[len] = '\0';
	c->used += len + 1;
	return out;
}

uint64_t
record_add(struct record *r, int mid, const char *params, size_t len, double t_ms,
    const char *via)
{
	struct rec *e;

	r->seq++;
	if (r->n >= r->limit)
		return r->seq;
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 4096;
		r->rec = util_xrealloc(r->rec, r->cap * sizeof(*r->rec));
	}
	e = &r->rec[r->n++];
	e->mid = (uint32_t)mid;
	e->len = (uint32_t)len;
	e->t_ms = t_ms;
	e->params = arena_copy(r, params, len);
	e->via = via[0] ? arena_copy(r, via, strlen(via)) : NULL;
	return r->seq;
}

void
record_json(const struct record *r, const struct stats *st, int mid, uint64_t since,
    size_t limit, struct evbuffer *buf)
{
	const char *sep = "";
	uint64_t next = since;
	size_t n = 0;

	evbuffer_add(buf, "{\"calls\":[", 10);
	for (size_t i = (size_t)since; i < r->n && n < limit; i++) {
		const struct rec *e = &r->rec[i];

		next = i + 1;
		if (mid >= 0 && (int)e->mid != mid)
			continue;
		evbuffer_add_printf(buf, "%s{\"seq\":%zu,\"method\":\"%s\",\"params\":", sep,
		    i + 1, stats_method_name(st, (int)e->mid));
		evbuffer_add(buf, e->params, e->len);
		evbuffer_add_printf(buf, ",\"t_ms\":%.3f", e->t_ms);
		if (e->via != NULL)
			evbuffer_add_printf(buf, ",\"via\":\"%s\"", e->via);
		evbuffer_add(buf, "}", 1);
		sep = ",";
		n++;
	}
	evbuffer_add_printf(buf, "],\"next\":%" PRIu64 ",\"total\":%" PRIu64 "}", next,
	    r->seq);
}
