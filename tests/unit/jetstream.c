/*
 * The JetStream modules against a real nats-server -js: the journal store
 * (store_js) and the work queue (workq). The server's URL comes from
 * TGRUN_NATS_URL; tests/integration/test_nats_modules.py starts the server
 * and runs this program. Every test uses streams of its own (its own bot name).
 * An argument runs only the tests it matches (cmocka's filter, e.g. "test_workq*").
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
/* Copies of every stream: TGRUN_NATS_REPLICAS (default 1), for a cluster of servers. */
static int replicas = 1;

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
	struct store *st = store_js_open(nc, js, name, replicas, TIMEOUT_MS, err, sizeof(err));

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
	/* Four updates, and each batch's offset note. */
	assert_int_equal(stream_msgs(b, NULL), 6);
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

/* A header of the newest message on `subj` of bot `name`'s journal stream, as a number. */
static long long last_header(const char *name, const char *subj, const char *key)
{
	char stream[128], full[128];
	const char *v = NULL;
	natsMsg *m = NULL;
	long long n;

	snprintf(stream, sizeof(stream), "TGRUN_%s_JOURNAL", name);
	snprintf(full, sizeof(full), "tgrun.%s.journal.%s", name, subj);
	assert_int_equal(js_GetLastMsg(&m, js, stream, full, NULL, NULL), NATS_OK);
	assert_int_equal(natsMsgHeader_Get(m, key, &v), NATS_OK);
	n = strtoll(v, NULL, 10);
	natsMsg_Destroy(m);
	return n;
}

/*
 * A leader stopped in the middle of a batch (paused, cut off) left part of it
 * in the stream: the next leader's offset is the one before that batch, so it
 * fetches the batch again and nothing of it is lost.
 */
static void test_store_cut_batch_fetched_again(void **state)
{
	const char *name = bot("cutbatch");
	struct store *a = open_store(name), *b;
	jsPubAck *pa = NULL;
	natsMsg *m = NULL;
	char subj[128];
	int64_t off = 0;

	add_ids(a, 1, 3, 4, 3);
	add_ids(a, 4, 1, 5, 1);
	/* Each message tells the offset before its batch, which is stored whole. */
	assert_int_equal(last_header(name, "upd", "Tgrun-Offset"), 4);
	store_close(a);
	/* The first message of the next batch (5, 6, 7), as a leader stopped after it left it. */
	snprintf(subj, sizeof(subj), "tgrun.%s.journal.upd", name);
	assert_int_equal(natsMsg_Create(&m, subj, NULL, "{\"update_id\":5}", 15), NATS_OK);
	assert_int_equal(natsMsgHeader_Set(m, "Nats-Msg-Id", "5"), NATS_OK);
	assert_int_equal(natsMsgHeader_Set(m, "Tgrun-Offset", "5"), NATS_OK);
	assert_int_equal(js_PublishMsg(&pa, js, m, NULL, NULL), NATS_OK);
	jsPubAck_Destroy(pa);
	natsMsg_Destroy(m);
	b = open_store(name);
	assert_int_equal(store_offset(b, &off), 0);
	assert_int_equal(off, 5);
	assert_int_equal(replay(b).n, 5);
	/* Fetched again: 5 is stored already, 6 and 7 are new; all are unfinished. */
	add_ids(b, 5, 3, 8, 2);
	assert_int_equal(replay(b).n, 7);
	assert_int_equal(store_offset(b, &off), 0);
	assert_int_equal(off, 8);
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
	/* Everything is finished: only the offset note (sequence 6) and later stay. */
	assert_int_equal(stream_msgs(a, &first), 6);
	assert_int_equal(first, 6);
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
	/* The batch's offset note (14) and the completion (15) stay. */
	assert_int_equal(stream_msgs(a, &first), 2);
	assert_int_equal(first, 14);
	b = open_store(name);
	assert_int_equal(store_offset(b, &off), 0);
	assert_int_equal(off, 301);
	assert_int_equal(replay(b).n, 0);
	store_close(b);
	store_close(a);
}

/* JetStream gives no ack (the stream is gone): the batch fails in bounded time, the store stays usable. */
static void test_store_unavailable(void **state)
{
	const char *name = bot("gone");
	struct store *a = open_store(name), *b;
	char stream[128];
	int64_t t0;
	struct seen s;

	add_ids(a, 1, 2, 3, 2);
	snprintf(stream, sizeof(stream), "TGRUN_%s_JOURNAL", name);
	assert_int_equal(js_DeleteStream(js, stream, NULL, NULL), NATS_OK);
	t0 = clock_ms();
	add_ids(a, 3, 2, 5, -1);
	assert_true(clock_ms() - t0 < TIMEOUT_MS + 1000);
	assert_true(store_errmsg(a)[0] != '\0');
	/* Back (another node made the stream again): the master's retry goes through. */
	b = open_store(name);
	add_ids(a, 3, 2, 5, 2);
	s = replay(b);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.ids[0], 3);
	assert_int_equal(s.ids[1], 4);
	store_close(b);
	store_close(a);
}

/* Cut off from NATS: every call fails at once, and closing does not wait for the server. */
static void test_store_disconnected(void **state)
{
	const char *name = bot("cut");
	struct event_base *base = event_base_new();
	natsConnection *nc2 = NULL;
	char err[256] = "";
	struct store *st;
	int64_t t0;

	assert_int_equal(natsConnection_ConnectTo(&nc2, getenv("TGRUN_NATS_URL")), NATS_OK);
	st = store_js_open(nc2, js, name, replicas, TIMEOUT_MS, err, sizeof(err));
	assert_non_null(st);
	add_ids(st, 1, 2, 3, 2);
	assert_int_equal(replay(st).n, 2);
	assert_int_equal(store_js_follow(st, base, NULL, NULL), 0);
	natsConnection_Close(nc2);
	t0 = clock_ms();
	add_ids(st, 3, 1, 4, -1);
	assert_string_equal(store_errmsg(st), "not connected to NATS");
	assert_int_equal(store_done(st, 1), 0);
	assert_int_equal(store_flush(st), -1);
	assert_int_equal(store_done_pending(st), 1);
	assert_int_equal(store_replay(st, collect, &(struct seen){ .n = 0 }), -1);
	store_close(st);
	assert_true(clock_ms() - t0 < 1000);
	natsConnection_Destroy(nc2);
	event_base_free(base);
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

/* ---- the work queue ---- */

struct worker {
	struct workq *q;
	int n, *total;
	int autofinish;			/* finish each item at once (throughput) */
	struct workq_item *items[32];
	int64_t ids[32];
	int delivery[32];
};

static void on_work(void *arg, struct workq_item *it, int64_t id, const char *body,
    size_t len, int delivery)
{
	struct worker *w = arg;
	char want[64];

	snprintf(want, sizeof(want), "{\"update_id\":%lld}", (long long)id);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(body, want, len);
	if (w->autofinish) {
		w->n++;
		workq_finish(w->q, it, WORKQ_OK, NULL);
		workq_set_capacity(w->q, w->autofinish);
		return;
	}
	assert_true(w->n < 32);
	w->items[w->n] = it;
	w->ids[w->n] = id;
	w->delivery[w->n++] = delivery;
	if (w->total != NULL)
		(*w->total)++;
}

static void open_worker(struct worker *w, const char *name, struct event_base *base,
    int64_t ack_wait_ms)
{
	struct workq_cbs cbs = { .arg = w, .on_work = on_work };
	char err[256] = "";

	memset(w, 0, sizeof(*w));
	w->q = workq_open(nc, js, base, name, replicas, ack_wait_ms, 4, &cbs, err, sizeof(err));
	if (w->q == NULL)
		fail_msg("workq_open(%s): %s", name, err);
}

static void publish_ids(struct workq *q, int64_t first, int n)
{
	char body[64];

	for (int64_t id = first; id < first + n; id++) {
		snprintf(body, sizeof(body), "{\"update_id\":%lld}", (long long)id);
		assert_int_equal(workq_publish(q, id, body, strlen(body)), 0);
	}
}

/* Run the loop for ms. */
static void spin(struct event_base *b, int ms)
{
	int never = 0;

	assert_false(wait_for(b, &never, 1, ms));
}

/* Wait until the work stream holds `want` messages. */
static void wait_work_msgs(struct event_base *b, struct workq *q, uint64_t want)
{
	struct workq_info info;
	int64_t end = clock_ms() + TIMEOUT_MS;

	do {
		assert_int_equal(workq_info(q, &info), 0);
		if (info.messages == want)
			return;
		spin(b, 20);
	} while (clock_ms() < end);
	fail_msg("the work stream holds %llu messages, not %llu",
	    (unsigned long long)info.messages, (unsigned long long)want);
}

/* A journal follower, to see the completions the work queue publishes. */
static struct store *follower(const char *name, struct event_base *base, struct dones *d)
{
	struct store *st = open_store(name);

	assert_int_equal(replay(st).n, 0);
	assert_int_equal(store_js_follow(st, base, on_done, d), 0);
	return st;
}

static void test_workq_ok(void **state)
{
	const char *name = bot("wok");
	struct event_base *base = event_base_new();
	struct dones d = { 0 };
	struct store *st = follower(name, base, &d);
	struct workq_info info;
	struct worker w;

	open_worker(&w, name, base, 5000);
	publish_ids(w.q, 41, 1);
	workq_set_capacity(w.q, 1);
	assert_true(wait_for(base, &w.n, 1, TIMEOUT_MS));
	assert_int_equal(w.ids[0], 41);
	assert_int_equal(w.delivery[0], 1);
	wait_work_msgs(base, w.q, 1);
	workq_finish(w.q, w.items[0], WORKQ_OK, NULL);
	assert_true(wait_for(base, &d.n, 1, TIMEOUT_MS));
	assert_int_equal(d.ids[0], 41);
	assert_int_equal(d.dead[0], 0);
	/* Acked once the completion was stored: the work queue forgets it. */
	wait_work_msgs(base, w.q, 0);
	assert_int_equal(workq_info(w.q, &info), 0);
	assert_int_equal(info.pulled, 1);
	assert_int_equal(info.ran, 1);
	assert_int_equal(info.last_seq, 1);
	workq_close(w.q);
	store_close(st);
	event_base_free(base);
}

static void test_workq_failed_redelivered(void **state)
{
	const char *name = bot("wfail");
	struct event_base *base = event_base_new();
	struct worker w;

	open_worker(&w, name, base, 5000);
	publish_ids(w.q, 42, 1);
	workq_set_capacity(w.q, 1);
	assert_true(wait_for(base, &w.n, 1, TIMEOUT_MS));
	workq_finish(w.q, w.items[0], WORKQ_FAILED, "handler failed");
	workq_set_capacity(w.q, 1);
	assert_true(wait_for(base, &w.n, 2, TIMEOUT_MS));
	assert_int_equal(w.ids[1], 42);
	assert_int_equal(w.delivery[1], 2);
	workq_finish(w.q, w.items[1], WORKQ_OK, NULL);
	wait_work_msgs(base, w.q, 0);
	workq_close(w.q);
	event_base_free(base);
}

static int check_dead_43(void *arg, const struct store_dead *d)
{
	assert_int_equal(d->update_id, 43);
	assert_int_equal(d->attempts, 1);
	assert_string_equal(d->error, "worker killed by signal 9");
	assert_string_equal(d->body, "{\"update_id\":43}");
	(*(int *)arg)++;
	return 0;
}

static void test_workq_dead(void **state)
{
	const char *name = bot("wdead");
	struct event_base *base = event_base_new();
	struct dones d = { 0 };
	struct store *st = follower(name, base, &d);
	struct worker w;
	int n = 0;

	open_worker(&w, name, base, 5000);
	publish_ids(w.q, 43, 1);
	workq_set_capacity(w.q, 1);
	assert_true(wait_for(base, &w.n, 1, TIMEOUT_MS));
	workq_finish(w.q, w.items[0], WORKQ_DEAD, "worker killed by signal 9");
	assert_true(wait_for(base, &d.n, 1, TIMEOUT_MS));
	assert_int_equal(d.ids[0], 43);
	assert_int_equal(d.dead[0], 1);
	assert_int_equal(store_dead_get(st, 43, check_dead_43, &n), 1);
	assert_int_equal(n, 1);
	wait_work_msgs(base, w.q, 0);
	/* Retried at once, within the duplicate window of w43: it runs again all the same. */
	publish_ids(w.q, 43, 1);
	workq_set_capacity(w.q, 1);
	assert_true(wait_for(base, &w.n, 2, TIMEOUT_MS));
	assert_int_equal(w.ids[1], 43);
	assert_int_equal(w.delivery[1], 1);
	/* While it waits in the stream, a republish (a new leader) is one message still. */
	workq_finish(w.q, w.items[1], WORKQ_FAILED, NULL);
	publish_ids(w.q, 43, 1);
	spin(base, 100);
	workq_set_capacity(w.q, 1);
	assert_true(wait_for(base, &w.n, 3, TIMEOUT_MS));
	assert_int_equal(w.delivery[2], 2);
	workq_finish(w.q, w.items[2], WORKQ_OK, NULL);
	wait_work_msgs(base, w.q, 0);
	spin(base, 300);
	assert_int_equal(w.n, 3);
	workq_close(w.q);
	store_close(st);
	event_base_free(base);
}

static void test_workq_capacity(void **state)
{
	const char *name = bot("wcap");
	struct event_base *base = event_base_new();
	struct worker w;

	open_worker(&w, name, base, 5000);
	publish_ids(w.q, 1, 5);
	wait_work_msgs(base, w.q, 5);
	/* No free slot: nothing is pulled. */
	workq_set_capacity(w.q, 0);
	spin(base, 600);
	assert_int_equal(w.n, 0);
	workq_set_capacity(w.q, 2);
	assert_true(wait_for(base, &w.n, 2, TIMEOUT_MS));
	spin(base, 600);
	assert_int_equal(w.n, 2);
	/* In order, each once. */
	assert_int_equal(w.ids[0], 1);
	assert_int_equal(w.ids[1], 2);
	workq_finish(w.q, w.items[0], WORKQ_OK, NULL);
	workq_set_capacity(w.q, 1);
	assert_true(wait_for(base, &w.n, 3, TIMEOUT_MS));
	spin(base, 600);
	assert_int_equal(w.n, 3);
	assert_int_equal(w.ids[2], 3);
	workq_set_capacity(w.q, 10);
	assert_true(wait_for(base, &w.n, 5, TIMEOUT_MS));
	for (int i = 1; i < 5; i++)
		workq_finish(w.q, w.items[i], WORKQ_OK, NULL);
	wait_work_msgs(base, w.q, 0);
	workq_close(w.q);
	event_base_free(base);
}

static void test_workq_two_share(void **state)
{
	const char *name = bot("wshare");
	struct event_base *base = event_base_new();
	struct worker a, b;
	int total = 0, seen[11] = { 0 };

	open_worker(&a, name, base, 5000);
	open_worker(&b, name, base, 5000);
	a.total = b.total = &total;
	publish_ids(a.q, 1, 10);
	workq_set_capacity(a.q, 5);
	workq_set_capacity(b.q, 5);
	assert_true(wait_for(base, &total, 10, TIMEOUT_MS));
	assert_int_equal(a.n, 5);
	assert_int_equal(b.n, 5);
	for (int i = 0; i < 5; i++) {
		seen[a.ids[i]]++;
		seen[b.ids[i]]++;
		workq_finish(a.q, a.items[i], WORKQ_OK, NULL);
		workq_finish(b.q, b.items[i], WORKQ_OK, NULL);
	}
	for (int i = 1; i <= 10; i++)
		assert_int_equal(seen[i], 1);
	wait_work_msgs(base, a.q, 0);
	/* One closing leaves the shared consumer to the other. */
	workq_close(a.q);
	publish_ids(b.q, 11, 1);
	workq_set_capacity(b.q, 1);
	assert_true(wait_for(base, &b.n, 6, TIMEOUT_MS));
	assert_int_equal(b.ids[5], 11);
	workq_finish(b.q, b.items[5], WORKQ_OK, NULL);
	wait_work_msgs(base, b.q, 0);
	workq_close(b.q);
	event_base_free(base);
}

/* A publish JetStream refuses (no stream) is tried again until it goes through. */
static void test_workq_publish_retried(void **state)
{
	const char *name = bot("wretry");
	struct event_base *base = event_base_new();
	struct worker a, b;
	char stream[128];

	open_worker(&a, name, base, 5000);
	snprintf(stream, sizeof(stream), "TGRUN_%s_WORK", name);
	assert_int_equal(js_DeleteStream(js, stream, NULL, NULL), NATS_OK);
	publish_ids(a.q, 9, 1);
	spin(base, 500);
	/* Another node makes the stream again. */
	open_worker(&b, name, base, 5000);
	workq_set_capacity(b.q, 1);
	assert_true(wait_for(base, &b.n, 1, TIMEOUT_MS));
	assert_int_equal(b.ids[0], 9);
	assert_int_equal(b.delivery[0], 1);
	workq_finish(b.q, b.items[0], WORKQ_OK, NULL);
	wait_work_msgs(base, b.q, 0);
	workq_close(a.q);
	workq_close(b.q);
	event_base_free(base);
}

/* A leader that steps down stops retrying; what it publishes after is retried again. */
static void test_workq_drop_unpublished(void **state)
{
	const char *name = bot("wdrop");
	struct event_base *base = event_base_new();
	struct worker a, b;
	char stream[128];

	open_worker(&a, name, base, 5000);
	snprintf(stream, sizeof(stream), "TGRUN_%s_WORK", name);
	assert_int_equal(js_DeleteStream(js, stream, NULL, NULL), NATS_OK);
	publish_ids(a.q, 20, 1);
	spin(base, 300);
	workq_drop_unpublished(a.q);
	publish_ids(a.q, 21, 1);
	spin(base, 300);
	open_worker(&b, name, base, 5000);
	workq_set_capacity(b.q, 2);
	assert_true(wait_for(base, &b.n, 1, TIMEOUT_MS));
	spin(base, 600);
	assert_int_equal(b.n, 1);
	assert_int_equal(b.ids[0], 21);
	workq_finish(b.q, b.items[0], WORKQ_OK, NULL);
	wait_work_msgs(base, b.q, 0);
	workq_close(a.q);
	workq_close(b.q);
	event_base_free(base);
}

static void test_workq_abandoned_redelivered(void **state)
{
	const char *name = bot("wgone");
	struct event_base *base = event_base_new();
	struct worker a, b;
	int64_t t0;

	open_worker(&a, name, base, 1000);
	publish_ids(a.q, 7, 1);
	workq_set_capacity(a.q, 1);
	assert_true(wait_for(base, &a.n, 1, TIMEOUT_MS));
	t0 = clock_ms();
	/* Its holder goes away without finishing it (a node that dies). */
	workq_close(a.q);
	open_worker(&b, name, base, 1000);
	workq_set_capacity(b.q, 1);
	assert_true(wait_for(base, &b.n, 1, TIMEOUT_MS));
	assert_int_equal(b.ids[0], 7);
	assert_int_equal(b.delivery[0], 2);
	/* Not before the ack wait ran out. */
	assert_true(clock_ms() - t0 >= 700);
	workq_finish(b.q, b.items[0], WORKQ_OK, NULL);
	wait_work_msgs(base, b.q, 0);
	workq_close(b.q);
	event_base_free(base);
}

/* Items through publish, pull, finish and ack, one node running them at once. */
static void test_workq_throughput(void **state)
{
	const char *name = bot("wrate");
	struct event_base *base = event_base_new();
	struct worker w;
	int64_t t0;

	open_worker(&w, name, base, 30000);
	w.autofinish = 256;
	workq_set_capacity(w.q, 256);
	t0 = clock_us();
	publish_ids(w.q, 1, 5000);
	assert_true(wait_for(base, &w.n, 5000, 60000));
	wait_work_msgs(base, w.q, 0);
	t0 = clock_us() - t0;
	print_message("workq: 5000 items published, pulled, finished and acked in %.0f ms "
	    "(%.0f/s)\n", t0 / 1000.0, 5000 / (t0 / 1e6));
	workq_close(w.q);
	event_base_free(base);
}

/* ---- main ---- */

static int setup(void **state)
{
	const char *url = getenv("TGRUN_NATS_URL");
	natsStatus s;

	if (getenv("TGRUN_NATS_REPLICAS") != NULL)
		replicas = atoi(getenv("TGRUN_NATS_REPLICAS"));
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
		cmocka_unit_test(test_store_cut_batch_fetched_again),
		cmocka_unit_test(test_store_dead_letters),
		cmocka_unit_test(test_store_offset_survives_purge),
		cmocka_unit_test(test_store_unavailable),
		cmocka_unit_test(test_store_disconnected),
		cmocka_unit_test(test_store_follow),
		cmocka_unit_test(test_store_replay_20000),
		cmocka_unit_test(test_workq_ok),
		cmocka_unit_test(test_workq_failed_redelivered),
		cmocka_unit_test(test_workq_dead),
		cmocka_unit_test(test_workq_capacity),
		cmocka_unit_test(test_workq_two_share),
		cmocka_unit_test(test_workq_publish_retried),
		cmocka_unit_test(test_workq_drop_unpublished),
		cmocka_unit_test(test_workq_abandoned_redelivered),
		cmocka_unit_test(test_workq_throughput),
	};

	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests(tests, setup, teardown);
}
