/*
 * Dispatch decisions (daemon/dispatch.h) with fake peers: least-loaded
 * choice, limits, retries run alone or delayed, reservation, lost peers,
 * timeouts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "clock.h"
#include "dispatch.h"

enum { NPEER = 3, NENT = 16 };

/* The owner: a queue of ready entries and a record of what was asked. */
struct fake {
	struct dsp_entry ents[NENT];
	int nready, next;		/* ents[next..nready) are ready */
	int peer_of[NENT];		/* last peer sent to, -1 if none */
	int sends, cancels[NPEER], kills[NPEER];
	int fail_send;			/* sends fail while set */
	int cancel_fails;
	int handles[NPEER];		/* the peers' handles point here */
	struct dsp_peer *peers[NPEER];
	struct dispatch *d;
};

static struct dsp_entry *next(void *arg)
{
	struct fake *f = arg;

	return f->next < f->nready ? &f->ents[f->next++] : NULL;
}

static int send_(void *arg, void *h, struct dsp_entry *e)
{
	struct fake *f = arg;

	if (f->fail_send)
		return -1;
	f->peer_of[e - f->ents] = *(int *)h;
	f->sends++;
	return 0;
}

static int cancel(void *arg, void *h, int64_t id)
{
	struct fake *f = arg;

	f->cancels[*(int *)h]++;
	return f->cancel_fails ? -1 : 0;
}

static void kill_(void *arg, void *h, int64_t id)
{
	struct fake *f = arg;

	f->kills[*(int *)h]++;
}

static void setup_fake(struct fake *f, int npeers, int per_peer, int total)
{
	struct dispatch_cbs cbs = { f, next, send_, cancel, kill_ };
	struct dispatch_limits lim = { per_peer, total, 1000, 500 };

	memset(f, 0, sizeof(*f));
	for (int i = 0; i < NENT; i++) {
		f->ents[i].id = 100 + i;
		f->peer_of[i] = -1;
	}
	f->d = dispatch_new(&cbs, &lim);
	assert_non_null(f->d);
	for (int i = 0; i < npeers; i++) {
		f->handles[i] = i;
		f->peers[i] = dispatch_peer_add(f->d, &f->handles[i]);
		assert_non_null(f->peers[i]);
	}
}

static int count_on(struct fake *f, int peer)
{
	return dispatch_peer_inflight(f->peers[peer]);
}

static void test_least_loaded_within_limits(void **state)
{
	struct fake f;

	setup_fake(&f, NPEER, 2, 5);
	f.nready = 8;
	dispatch_run(f.d);
	/* The total limit stops it at 5; no peer gets more than one over another. */
	assert_int_equal(f.sends, 5);
	assert_int_equal(dispatch_counts(f.d).inflight, 5);
	for (int i = 0; i < NPEER; i++) {
		assert_true(count_on(&f, i) >= 1);
		assert_true(count_on(&f, i) <= 2);
	}
	/* One ends: exactly one more goes, to the peer it ended on. */
	int p = f.peer_of[0];
	assert_int_equal(dispatch_done(f.d, f.peers[p], &f.ents[0]), 0);
	dispatch_run(f.d);
	assert_int_equal(f.sends, 6);
	assert_int_equal(dispatch_counts(f.d).inflight, 5);
	for (int i = 0; i < NPEER; i++)
		assert_true(count_on(&f, i) >= 1 && count_on(&f, i) <= 2);
	/* DONE from the wrong peer is refused and changes nothing. */
	assert_int_equal(dispatch_done(f.d, f.peers[(f.peer_of[1] + 1) % NPEER],
	    &f.ents[1]), -1);
	assert_int_equal(dispatch_counts(f.d).inflight, 5);
	dispatch_free(f.d);
}

static void test_per_peer_limit(void **state)
{
	struct fake f;

	setup_fake(&f, 2, 3, 100);
	f.nready = 10;
	dispatch_run(f.d);
	assert_int_equal(f.sends, 6);
	assert_int_equal(count_on(&f, 0), 3);
	assert_int_equal(count_on(&f, 1), 3);
	dispatch_free(f.d);
}

static void test_closed_peer_gets_nothing_new(void **state)
{
	struct fake f;

	setup_fake(&f, 2, 4, 100);
	dispatch_peer_close(f.d, f.peers[0]);
	f.nready = 3;
	dispatch_run(f.d);
	assert_int_equal(count_on(&f, 0), 0);
	assert_int_equal(count_on(&f, 1), 3);
	dispatch_free(f.d);
}

static void lost_retry(void *arg, struct dsp_entry *e, int timed_out)
{
	struct fake *f = arg;

	assert_int_equal(timed_out, 0);
	dispatch_retry(f->d, e, 0, 1);
}

/* A retried update runs alone: on an idle peer that gets nothing else meanwhile. */
static void test_retry_runs_alone(void **state)
{
	struct fake f;

	setup_fake(&f, NPEER, 4, 100);
	f.nready = 2;
	dispatch_run(f.d);	/* ents 0, 1 on two different peers */
	assert_int_not_equal(f.peer_of[0], f.peer_of[1]);
	int dead = f.peer_of[0], idle = 3 - f.peer_of[0] - f.peer_of[1];

	dispatch_peer_remove(f.d, f.peers[dead], lost_retry, &f);
	f.peers[dead] = NULL;
	assert_int_equal(dispatch_counts(f.d).queued, 1);
	f.nready = 6;
	dispatch_run(f.d);
	assert_int_equal(f.peer_of[0], idle);
	assert_int_equal(dispatch_counts(f.d).queued, 0);
	/* Everything new went to the other peer, none to the isolated one. */
	assert_int_equal(count_on(&f, idle), 1);
	assert_int_equal(count_on(&f, f.peer_of[1]), 4);
	/* Once the retry ends, the peer takes work again. */
	assert_int_equal(dispatch_done(f.d, f.peers[idle], &f.ents[0]), 0);
	dispatch_run(f.d);
	assert_int_equal(count_on(&f, idle), 1);
	assert_int_equal(f.peer_of[5], idle);
	dispatch_free(f.d);
}

/* No idle peer: the least loaded is reserved, then takes the retry when idle. */
static void test_retry_reserves_a_peer(void **state)
{
	struct fake f;

	setup_fake(&f, 2, 4, 100);
	f.nready = 3;
	dispatch_run(f.d);	/* 2 on one, 1 on the other */
	int light = count_on(&f, 0) == 1 ? 0 : 1;
	int light_ent = f.peer_of[0] == light ? 0 : f.peer_of[1] == light ? 1 : 2;

	dispatch_retry(f.d, &f.ents[10], 0, 1);
	f.nready = 8;
	dispatch_run(f.d);
	/* The light peer is reserved: it got none of the new updates. */
	assert_int_equal(count_on(&f, light), 1);
	assert_int_equal(f.peer_of[10], -1);
	assert_int_equal(dispatch_done(f.d, f.peers[light], &f.ents[light_ent]), 0);
	dispatch_run(f.d);
	assert_int_equal(f.peer_of[10], light);
	assert_int_equal(count_on(&f, light), 1);
	dispatch_free(f.d);
}

static void test_send_failure_queues(void **state)
{
	struct fake f;

	setup_fake(&f, 1, 4, 100);
	f.fail_send = 1;
	f.nready = 1;
	dispatch_run(f.d);
	assert_int_equal(dispatch_counts(f.d).inflight, 0);
	assert_int_equal(dispatch_counts(f.d).queued, 1);
	f.fail_send = 0;
	dispatch_run(f.d);
	assert_int_equal(f.peer_of[0], 0);
	assert_int_equal(dispatch_counts(f.d).queued, 0);
	dispatch_free(f.d);
}

struct lost_seen {
	int n, timed_out;
};

static void lost_count(void *arg, struct dsp_entry *e, int timed_out)
{
	struct lost_seen *l = arg;

	l->n++;
	l->timed_out += timed_out;
}

static void test_timeouts_cancel_then_kill(void **state)
{
	struct fake f;
	struct lost_seen l = { 0, 0 };
	int64_t t0 = clock_ms();

	setup_fake(&f, 1, 4, 100);
	f.nready = 2;
	dispatch_run(f.d);
	dispatch_tick(f.d, t0 + 10);
	assert_int_equal(f.cancels[0], 0);
	dispatch_tick(f.d, t0 + 1000 + 100);	/* past update_timeout */
	assert_int_equal(f.cancels[0], 2);
	assert_int_equal(dispatch_counts(f.d).timeouts, 2);
	dispatch_tick(f.d, t0 + 1000 + 200);	/* within the grace: nothing more */
	assert_int_equal(f.cancels[0], 2);
	assert_int_equal(f.kills[0], 0);
	dispatch_tick(f.d, t0 + 1000 + 100 + 500);
	assert_int_equal(f.kills[0], 1);
	dispatch_peer_remove(f.d, f.peers[0], lost_count, &l);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.timed_out, 2);
	assert_int_equal(dispatch_counts(f.d).inflight, 0);
	dispatch_free(f.d);
}

/* The master did not run for 5 s: updates running meanwhile get the time back. */
static void test_stall_gives_time_back(void **state)
{
	struct fake f;
	int64_t t0 = clock_ms();

	setup_fake(&f, 1, 4, 100);
	f.nready = 2;
	dispatch_run(f.d);
	dispatch_stalled(f.d, 5000);
	dispatch_tick(f.d, t0 + 1000 + 100);	/* past update_timeout, stall not counted */
	assert_int_equal(f.cancels[0], 0);
	dispatch_tick(f.d, t0 + 5000 + 1000 + 100);
	assert_int_equal(f.cancels[0], 2);
	dispatch_free(f.d);
}

static void test_cancel_failure_kills(void **state)
{
	struct fake f;

	setup_fake(&f, 1, 4, 100);
	f.cancel_fails = 1;
	f.nready = 1;
	dispatch_run(f.d);
	dispatch_tick(f.d, clock_ms() + 2000);
	assert_int_equal(f.cancels[0], 1);
	assert_int_equal(f.kills[0], 1);
	dispatch_cancel_all(f.d);
	assert_int_equal(f.cancels[0], 2);
	dispatch_free(f.d);
}

static void test_forget(void **state)
{
	struct fake f;

	setup_fake(&f, 1, 4, 100);
	f.nready = 1;
	dispatch_run(f.d);
	dispatch_retry(f.d, &f.ents[5], 0, 1);
	dispatch_forget(f.d, &f.ents[0]);
	dispatch_forget(f.d, &f.ents[5]);
	assert_int_equal(dispatch_counts(f.d).inflight, 0);
	assert_int_equal(dispatch_counts(f.d).queued, 0);
	assert_int_equal(count_on(&f, 0), 0);
	dispatch_free(f.d);
}

/* A failed handler's retry waits for its time, then joins a busy peer. */
static void test_delayed_retry_not_alone(void **state)
{
	struct fake f;

	setup_fake(&f, 1, 4, 100);
	f.nready = 2;
	dispatch_run(f.d);
	assert_int_equal(dispatch_done(f.d, f.peers[0], &f.ents[0]), 0);
	dispatch_retry(f.d, &f.ents[0], clock_ms() + 60000, 0);
	assert_false(dispatch_retry_due(f.d, clock_ms()));
	dispatch_run(f.d);
	assert_int_equal(f.sends, 2);
	assert_int_equal(dispatch_counts(f.d).queued, 1);
	/* Due: it runs beside ents[1], and new work still goes there too. */
	f.ents[0].not_before_ms = clock_ms();
	assert_true(dispatch_retry_due(f.d, clock_ms()));
	f.nready = 3;
	dispatch_run(f.d);
	assert_int_equal(f.sends, 4);
	assert_int_equal(dispatch_counts(f.d).queued, 0);
	assert_int_equal(count_on(&f, 0), 3);
	dispatch_free(f.d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_least_loaded_within_limits),
		cmocka_unit_test(test_per_peer_limit),
		cmocka_unit_test(test_closed_peer_gets_nothing_new),
		cmocka_unit_test(test_retry_runs_alone),
		cmocka_unit_test(test_retry_reserves_a_peer),
		cmocka_unit_test(test_send_failure_queues),
		cmocka_unit_test(test_timeouts_cancel_then_kill),
		cmocka_unit_test(test_stall_gives_time_back),
		cmocka_unit_test(test_cancel_failure_kills),
		cmocka_unit_test(test_forget),
		cmocka_unit_test(test_delayed_retry_not_alone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
