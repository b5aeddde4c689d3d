/*
 * The JetStream modules against a real nats-server -js: the journal store
 * (store_js) and the work queue (workq). The server's URL comes from
 * TGRUN_NATS_URL; tests/integration/test_nats_modules.py starts the server
 * and runs this program. Every test uses streams of its own (its own bot name).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>
#include <nats/nats.h>

#include "clock.h"
#include "store.h"
#include "store_js.h"
#include "store_conformance.h"
#include "workq.h"

#define TIMEOUT_MS 5000

static natsConnection *nc;
static jsCtx *js;

/* A bot name no other test (or run) uses, so each test has streams of its own. */
static const char *bot(const char *tag)
{
	static char buf[64];

	snprintf(buf, sizeof(buf), "t%ld_%s", (long)getpid(), tag);
	return buf;
}

static struct store *open_store(const char *name)
{
	char err[256] = "";
	struct store *st = store_js_open(nc, js, name, 1, TIMEOUT_MS, err, sizeof(err));

	if (st == NULL)
		fail_msg("store_js_open(%s): %s", name, err);
	return st;
}

/* Run the loop until *counter reaches want or ms pass; whether it did. */
static int wait_for(struct event_base *b, const int *counter, int want, int ms)
{
	int64_t end = clock_ms() + ms;
	struct timeval tv = { 0, 10000 };

	while (*counter < want && clock_ms() < end) {
		event_base_loopexit(b, &tv);
		event_base_dispatch(b);
	}
	return *counter >= want;
}

static void add_ids(struct store *st, int64_t first, int n, int64_t next_offset, int fresh)
{
	int64_t ids[8];

	for (int i = 0; i < n; i++)
		ids[i] = first + i;
	add(st, ids, (size_t)n, next_offset, fresh);
}

static uint64_t stream_msgs(struct store *st, uint64_t *first_seq)
{
	struct store_js_info info;

	assert_int_equal(store_js_info(st, &info), 0);
	if (first_seq != NULL)
		*first_seq = info.first_seq;
	return info.messages;
}

/* ---- the journal store ---- */

static void test_store_conformance(void **state)
{
	const char *name = bot("conf");
	struct store *st = open_store(name);
	int64_t off = 0;
	struct seen s;

	conformance(st);
	/* Queued completions are stored by close; a new leader sees the rest. */
	assert_int_equal(store_done(st, 12), 0);
	store_close(st);
	st = open_store(name);
	assert_int_equal(store_offset(st, &off), 0);
	assert_int_equal(off, 14);
	s = replay(st);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.ids[0], 10);
	store_close(st);
}

static void test_store_republish_deduplicated(void **state)
{
	const char *name = bot("dedup");
	struct store *a = open_store(name), *b;
	struct seen s;

	add_ids(a, 1, 3, 4, 3);
	/* A new leader republishes the batch it found, and one more update. */
	b = open_store(name);
	add_ids(b, 2, 3, 5, 1);
	assert_int_equal(stream_msgs(b, NULL), 4);
	s = replay(b);
	assert_int_equal(s.n, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(s.ids[i], i + 1);
	/* The first leader's completions count for the second. */
	assert_int_equal(store_done(a, 2), 0);
	assert_int_equal(store_flush(a), 0);
	s = replay(b);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.ids[0], 1);
	assert_int_equal(s.ids[1], 3);
	store_close(a);
	store_close(b);
}

static int check_dead(void *arg, const struct store_dead *d)
{
	int *n = arg;

	assert_int_equal(d->update_id, 7);
	assert_int_equal(d->attempts, 4);
	assert_string_equal(d->error, "handler \"crashed\"");
	assert_string_equal(d->body, "{\"update_id\":7}");
	assert_int_equal(d->len, strlen(d->body));
	assert_true(d->died_at > 1700000000);
	(*n)++;
	return 0;
}

static void test_store_dead_letters(void **state)
{
	const char *name = bot("dead");
	struct store *a = open_store(name), *b;
	int n = 0;
	struct seen s;

	add_ids(a, 7, 2, 9, 2);
	assert_int_equal(store_dead_letter(a, 7, 4, "handler \"crashed\""), 0);
	assert_int_equal(store_dead_get(a, 7, check_dead, &n), 1);
	assert_int_equal(n, 1);
	/* Another node (a new leader) sees the same dead letters and unfinished set. */
	b = open_store(name);
	assert_int_equal(store_dead_count(b), 1);
	assert_int_equal(store_dead_list(b, check_dead, &n), 0);
	assert_int_equal(n, 2);
	s = replay(b);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.ids[0], 8);
	/* Retried within the duplicate window of its first publish: back all the same. */
	assert_int_equal(store_dead_retry(b, 7), 1);
	assert_int_equal(store_dead_retry(b, 7), 0);
	s = replay(b);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.ids[0], 7);
	s = replay(a);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.ids[0], 7);
	assert_int_equal(store_dead_letter(a, 8, 1, NULL), 0);
	assert_int_equal(store_dead_drop(b, STORE_ALL), 1);
	assert_int_equal(store_dead_count(a), 0);
	s = replay(b);
	assert_int_equal(s.n, 1);
	store_close(a);
	store_close(b);
}

static void test_store_offset_survives_purge(void **state)
{
	const char *name = bot("purge");
	struct store *a = open_store(name), *b;
	uint64_t first = 0;
	int64_t off = 0;
	struct seen s;

	add_ids(a, 100, 5, 105, 5);
	s = replay(a);
	assert_int_equal(s.n, 5);
	for (int i = 0; i < 5; i++)
		assert_int_equal(store_done(a, 100 + i), 0);
	assert_int_equal(store_flush(a), 0);
	/* Everything is finished: only the newest update (it tells the offset) and later stay. */
	assert_int_equal(stream_msgs(a, &first), 6);
	assert_int_equal(first, 5);
	b = open_store(name);
	assert_int_equal(store_offset(b, &off), 0);
	assert_int_equal(off, 105);
	assert_int_equal(replay(b).n, 0);
	store_close(b);

	/* An offset alone, then one more update, purged again a second later. */
	assert_int_equal(store_add_batch(a, NULL, 0, 300), 0);
	add_ids(a, 300, 1, 301, 1);
	assert_int_equal(replay(a).n, 1);
	assert_int_equal(store_done(a, 300), 0);
	usleep(1100 * 1000);
	assert_int_equal(store_flush(a), 0);
	assert_int_equal(stream_msgs(a, &first), 2);
	assert_int_equal(first, 12);
	b = open_store(name);
	assert_int_equal(store_offset(b, &off), 0);
	assert_int_equal(off, 301);
	assert_int_equal(replay(b).n, 0);
	store_close(b);
	store_close(a);
}

struct dones {
	int n;
	int64_t ids[16];
	int dead[16];
};

static void on_done(void *arg, int64_t id, int dead)
{
	struct dones *d = arg;

	assert_true(d->n < 16);
	d->ids[d->n] = id;
	d->dead[d->n++] = dead;
}

static void test_store_follow(void **state)
{
	const char *name = bot("follow");
	struct event_base *base = event_base_new();
	struct store *lead = open_store(name), *node = open_store(name);
	struct dones d = { 0 };

	add_ids(lead, 1, 5, 6, 5);
	assert_int_equal(replay(node).n, 5);
	assert_int_equal(replay(lead).n, 5);
	/* Finished after the leader's replay, before it follows: not lost. */
	assert_int_equal(store_done(node, 1), 0);
	assert_int_equal(store_flush(node), 0);
	assert_int_equal(store_js_follow(lead, base, on_done, &d), 0);
	assert_int_equal(store_js_follow(lead, base, on_done, &d), -1);
	assert_true(wait_for(base, &d.n, 1, TIMEOUT_MS));
	assert_int_equal(d.ids[0], 1);
	assert_int_equal(d.dead[0], 0);
	/* Later ones, a dead letter among them. */
	assert_int_equal(store_done(node, 3), 0);
	assert_int_equal(store_flush(node), 0);
	assert_int_equal(store_dead_letter(node, 2, 3, "boom"), 0);
	assert_true(wait_for(base, &d.n, 3, TIMEOUT_MS));
	assert_int_equal(d.ids[1], 3);
	assert_int_equal(d.dead[1], 0);
	assert_int_equal(d.ids[2], 2);
	assert_int_equal(d.dead[2], 1);
	/* The leader's own completions are not handed back to it. */
	assert_int_equal(store_done(lead, 4), 0);
	assert_int_equal(store_flush(lead), 0);
	assert_false(wait_for(base, &d.n, 4, 300));
	/* Its unfinished set followed the stream. */
	{
		struct seen s = replay(lead);

		assert_int_equal(s.n, 1);
		assert_int_equal(s.ids[0], 5);
	}
	store_close(node);
	store_close(lead);
	event_base_free(base);
}

struct count {
	int64_t n, prev;
};

static int count_in_order(void *arg, int64_t id, const char *body, size_t len, int attempt)
{
	struct count *c = arg;

	assert_true(id > c->prev);
	c->prev = id;
	c->n++;
	return 0;
}

/* The cost of a batch, and of rebuilding the pending set from 20,000 updates. */
static void test_store_replay_20000(void **state)
{
	const char *name = bot("big");
	struct store *a = open_store(name), *b;
	struct store_rec recs[100];
	char bodies[100][96];
	struct count c = { 0, -1 };
	int64_t t0, t_add = 0, t_max = 0;

	for (int batch = 0; batch < 200; batch++) {
		for (int i = 0; i < 100; i++) {
			int64_t id = 500000 + (int64_t)batch * 100 + (99 - i);

			snprintf(bodies[i], sizeof(bodies[i]), "{\"update_id\":%lld,\"message\":"
			    "{\"chat\":{\"id\":%d},\"text\":\"hello\"}}", (long long)id, i % 7);
			recs[i] = (struct store_rec){ id, bodies[i], strlen(bodies[i]) };
		}
		t0 = clock_us();
		assert_int_equal(store_add_batch(a, recs, 100, 500000 + (batch + 1) * 100), 100);
		t0 = clock_us() - t0;
		t_add += t0;
		if (t0 > t_max)
			t_max = t0;
	}
	print_message("store_js: add_batch of 100 updates: %.2f ms on average, %.2f ms at most "
	    "(200 batches)\n", t_add / 200 / 1000.0, t_max / 1000.0);
	b = open_store(name);
	t0 = clock_us();
	assert_int_equal(store_replay(b, count_in_order, &c), 0);
	t0 = clock_us() - t0;
	assert_int_equal(c.n, 20000);
	print_message("store_js: replay of 20000 unfinished updates: %.1f ms\n", t0 / 1000.0);
	store_close(b);
	store_close(a);
}

/* ---- main ---- */

static int setup(void **state)
{
	const char *url = getenv("TGRUN_NATS_URL");
	natsStatus s;

	if (url == NULL) {
		fprintf(stderr, "TGRUN_NATS_URL is not set: run this program from "
		    "tests/integration/test_nats_modules.py\n");
		return -1;
	}
	s = natsConnection_ConnectTo(&nc, url);
	if (s == NATS_OK)
		s = natsConnection_JetStream(&js, nc, NULL);
	if (s != NATS_OK) {
		fprintf(stderr, "connect %s: %s\n", url, natsStatus_GetText(s));
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	nats_Close();
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_store_conformance),
		cmocka_unit_test(test_store_republish_deduplicated),
		cmocka_unit_test(test_store_dead_letters),
		cmocka_unit_test(test_store_offset_survives_purge),
		cmocka_unit_test(test_store_follow),
		cmocka_unit_test(test_store_replay_20000),
	};

	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests(tests, setup, teardown);
}
