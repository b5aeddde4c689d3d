/* Unit tests of the fibers' named locks (worker/locks.c): the key map, contention, hand-over order. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "clock.h"
#include "fiber.h"
#include "sched.h"
#include "worker.h"
#include "wtest.h"

static int setup(void **state)
{
	return wtest_setup(16);
}

static int teardown(void **state)
{
	assert_int_equal(sched_count(W.sched), 0);
	assert_true(LIST_EMPTY(&W.background));
	locks_free(&W);
	wtest_teardown();
	return 0;
}

/* A context ends with its fiber, as the worker's do: held locks go to their next waiter. */
static void ctx_done(struct task *t, void *arg)
{
	struct tgrun_ctx *ctx = task_data(t);

	ctx->task = NULL;
	ctx_free(ctx);
}

static struct task *spawn(task_fn fn, void *arg)
{
	return wtest_spawn(fn, arg, ctx_done);
}

/* Run tasks and the event loop until no task is left, at most 20 s. */
static void drain(void)
{
	wtest_drain(20000);
}

/* ---- many keys ----------------------------------------------------------------------- */

#define NKEYS 60000

struct many {
	int locked, relocked, unlocked, again_eperm, deadlk, ms;
};

static void key_of(char *buf, size_t len, int i)
{
	snprintf(buf, len, "chat:%d", i);
}

static void many_main(struct task *t, void *arg)
{
	struct tgrun_ctx *ctx = task_data(t);
	struct many *m = arg;
	int64_t t0 = clock_ms();
	char key[32];

	for (int i = 0; i < NKEYS; i++) {
		key_of(key, sizeof(key), i);
		m->locked += tgrun_lock(ctx, key, 0) == 0;
	}
	key_of(key, sizeof(key), NKEYS / 2);
	m->deadlk = tgrun_lock(ctx, key, 0) == -1 && errno == EDEADLK;
	/* Released in another order than taken: every 7th key, then the rest. */
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < NKEYS; i++) {
			if ((i % 7 == 0) != (pass == 0))
				continue;
			key_of(key, sizeof(key), i);
			m->unlocked += tgrun_unlock(ctx, key) == 0;
		}
	}
	for (int i = 0; i < NKEYS; i += 997) {
		key_of(key, sizeof(key), i);
		m->again_eperm += tgrun_unlock(ctx, key) == -1 && errno == EPERM;
	}
	/* Released keys are free to take again at once. */
	for (int i = 0; i < NKEYS; i++) {
		key_of(key, sizeof(key), NKEYS - 1 - i);
		if (tgrun_lock(ctx, key, 0) == 0 && tgrun_unlock(ctx, key) == 0)
			m->relocked++;
	}
	m->ms = (int)(clock_ms() - t0);
}

/*
 * Keys are looked up in a map: 60,000 keys taken, released and taken again
 * in well under a second (a list searched per lookup takes minutes).
 */
static void test_many_keys(void **state)
{
	struct many m = { 0 };

	spawn(many_main, &m);
	drain();
	assert_int_equal(m.locked, NKEYS);
	assert_true(m.deadlk);
	assert_int_equal(m.unlocked, NKEYS);
	assert_int_equal(m.again_eperm, (NKEYS + 996) / 997);
	assert_int_equal(m.relocked, NKEYS);
	assert_true(m.ms < 5000);
}

/* ---- contention ------------------------------------------------------------------------ */

struct locker {
	const char *key;
	double timeout;
	double hold;		/* seconds held (yielding) before unlocking */
	int no_unlock;		/* return holding it: ending the fiber releases it */
	int *order;		/* shared counter: the n-th to get the lock */
	int rc, err, got_as;
	struct task *t;
};

static void locker_main(struct task *t, void *arg)
{
	struct tgrun_ctx *ctx = task_data(t);
	struct locker *l = arg;

	errno = 0;
	l->rc = tgrun_lock(ctx, l->key, l->timeout);
	l->err = errno;
	if (l->rc != 0)
		return;
	l->got_as = ++*l->order;
	(void)tgrun_sleep(ctx, l->hold);
	if (!l->no_unlock)
		assert_int_equal(tgrun_unlock(ctx, l->key), 0);
}

static struct locker *lockers(int n, const char *key, int *order)
{
	struct locker *l = calloc((size_t)n, sizeof(*l));

	assert_non_null(l);
	for (int i = 0; i < n; i++) {
		l[i].key = key;
		l[i].timeout = 10;
		l[i].order = order;
	}
	return l;
}

/*
 * One holder, then waiters queued in arrival order. A waiter that times
 * out and one that is cancelled leave the queue wherever they are; the
 * others get the key strictly in arrival order, each when the previous let go.
 */
static void test_contention_fifo_timeout_cancel(void **state)
{
	int order = 0;
	struct locker *l = lockers(6, "K", &order);

	l[0].hold = 0.05;		/* the holder */
	l[2].timeout = 0.01;		/* times out in the middle of the queue */
	for (int i = 0; i < 6; i++)
		l[i].t = spawn(locker_main, &l[i]);
	sched_run(W.sched);		/* 0 holds; 1..5 queued in that order */
	assert_int_equal(order, 1);
	sched_cancel(l[4].t);		/* cancelled while queued */
	drain();
	assert_int_equal(l[0].got_as, 1);
	assert_int_equal(l[1].got_as, 2);
	assert_int_equal(l[3].got_as, 3);
	assert_int_equal(l[5].got_as, 4);
	assert_int_equal(l[2].rc, -1);
	assert_int_equal(l[2].err, ETIMEDOUT);
	assert_int_equal(l[2].got_as, 0);
	assert_int_equal(l[4].rc, -1);
	assert_int_equal(l[4].err, ECANCELED);
	assert_int_equal(l[4].got_as, 0);
	free(l);
}

/* A fiber that ends holding locks hands each to that key's next waiter. */
static void test_ended_holder_hands_over(void **state)
{
	int order_a = 0, order_b = 0;
	struct locker *a = lockers(3, "A", &order_a), *b = lockers(2, "B", &order_b);

	a[0].no_unlock = 1;
	b[0].no_unlock = 1;
	for (int i = 0; i < 3; i++)
		spawn(locker_main, &a[i]);
	for (int i = 0; i < 2; i++)
		spawn(locker_main, &b[i]);
	drain();
	for (int i = 0; i < 3; i++)
		assert_int_equal(a[i].got_as, i + 1);
	for (int i = 0; i < 2; i++)
		assert_int_equal(b[i].got_as, i + 1);
	free(a);
	free(b);
}

/*
 * Many keys at once, each contended by several fibers that arrive in
 * turns: every key is handed over in its own arrival order, whatever the
 * other keys do.
 */
#define NK 200
#define PER 4

static void test_many_keys_contended(void **state)
{
	static char keys[NK][16];
	int order[NK] = { 0 };
	struct locker *l = calloc(NK * PER, sizeof(*l));

	assert_non_null(l);
	for (int k = 0; k < NK; k++)
		snprintf(keys[k], sizeof(keys[k]), "k%d", k);
	/* Arrival: round p brings fiber p of every key, keys in a scrambled order. */
	for (int p = 0; p < PER; p++) {
		for (int j = 0; j < NK; j++) {
			int k = (j * 37 + p * 11) % NK;
			struct locker *x = &l[k * PER + p];

			x->key = keys[k];
			x->timeout = 10;
			x->hold = p == 0 ? 0.02 : 0;
			x->order = &order[k];
			spawn(locker_main, x);
		}
	}
	drain();
	for (int k = 0; k < NK; k++) {
		assert_int_equal(order[k], PER);
		for (int p = 0; p < PER; p++)
			assert_int_equal(l[k * PER + p].got_as, p + 1);
	}
	free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_many_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_contention_fifo_timeout_cancel, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_ended_holder_hands_over, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_keys_contended, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
