/*
 * The master's rules for a store (daemon/store.h), checked through the
 * interface alone, so every store runs the same cases: the SQLite journal in
 * test_store.c, the JetStream journal in jetstream.c.
 */
#ifndef TGRUN_TEST_STORE_CONFORMANCE_H
#define TGRUN_TEST_STORE_CONFORMANCE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "store.h"

struct seen {
	int64_t ids[16];
	int attempts[16];
	int n;
};

static int collect(void *arg, int64_t id, const char *body, size_t len, int attempt)
{
	struct seen *s = arg;
	char want[64];

	snprintf(want, sizeof(want), "{\"update_id\":%lld}", (long long)id);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(body, want, len);
	s->ids[s->n] = id;
	s->attempts[s->n++] = attempt;
	return 0;
}

static int collect_dead(void *arg, const struct store_dead *d)
{
	struct seen *s = arg;

	s->ids[s->n] = d->update_id;
	s->attempts[s->n++] = d->attempts;
	return 0;
}

static struct seen replay(struct store *st)
{
	struct seen s = { .n = 0 };

	assert_int_equal(store_replay(st, collect, &s), 0);
	return s;
}

static void add(struct store *st, const int64_t *ids, size_t n, int64_t next_offset, int fresh)
{
	char bodies[8][64];
	struct store_rec recs[8];

	for (size_t i = 0; i < n; i++) {
		snprintf(bodies[i], sizeof(bodies[i]), "{\"update_id\":%lld}", (long long)ids[i]);
		recs[i] = (struct store_rec){ ids[i], bodies[i], strlen(bodies[i]) };
	}
	assert_int_equal(store_add_batch(st, recs, n, next_offset), fresh);
}

/* What the master relies on, through the interface only. */
static void conformance(struct store *st)
{
	struct seen s;
	int64_t off = -1;

	assert_int_equal(store_offset(st, &off), 0);
	assert_int_equal(off, 0);

	/* A batch arrives out of order; replay is in update_id order. */
	add(st, (const int64_t[]){ 12, 10, 11 }, 3, 13, 3);
	assert_int_equal(store_offset(st, &off), 0);
	assert_int_equal(off, 13);
	s = replay(st);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.ids[0], 10);
	assert_int_equal(s.ids[1], 11);
	assert_int_equal(s.ids[2], 12);

	/* Completions are queued, then written. */
	assert_int_equal(store_done(st, 11), 0);
	assert_int_equal(store_done_pending(st), 1);
	assert_int_equal(store_flush(st), 0);
	assert_int_equal(store_done_pending(st), 0);
	s = replay(st);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.ids[0], 10);
	assert_int_equal(s.ids[1], 12);

	/* Attempts persist; a batch that repeats an id keeps what was stored. */
	assert_int_equal(store_set_attempt(st, 12, 2), 0);
	add(st, (const int64_t[]){ 12, 13 }, 2, 14, 1);
	s = replay(st);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.ids[1], 12);
	assert_int_equal(s.attempts[1], 2);
	assert_int_equal(s.ids[2], 13);

	/* Dead letters: out of the unfinished set, listed, retried, dropped. */
	assert_int_equal(store_dead_letter(st, 10, 3, "worker died"), 0);
	assert_int_equal(store_dead_count(st), 1);
	s = replay(st);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.ids[0], 12);
	s.n = 0;
	assert_int_equal(store_dead_list(st, collect_dead, &s), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.ids[0], 10);
	assert_int_equal(s.attempts[0], 3);
	s.n = 0;
	assert_int_equal(store_dead_get(st, 10, collect_dead, &s), 1);
	assert_int_equal(store_dead_get(st, 99, collect_dead, &s), 0);
	assert_int_equal(store_dead_retry(st, STORE_ALL), 1);
	assert_int_equal(store_dead_count(st), 0);
	s = replay(st);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.ids[0], 10);
	assert_int_equal(s.attempts[0], 0);
	assert_int_equal(store_dead_letter(st, 13, 1, NULL), 0);
	assert_int_equal(store_dead_drop(st, 13), 1);
	assert_int_equal(store_dead_drop(st, 13), 0);
	assert_int_equal(store_dead_count(st), 0);

	/* An id that is not stored cannot become a dead letter; the store stays usable. */
	assert_int_equal(store_dead_letter(st, 4242, 1, "x"), -1);
	assert_non_null(store_errmsg(st));
	assert_false(store_disk_full(st));
	s = replay(st);
	assert_int_equal(s.n, 2);
	assert_true(store_size_bytes(st) > 0);
}

#endif
