/* Unit tests for worker/fiber.c, worker/sched.c, and waiters and tgrun_all (worker/waiter.c, worker/spawn.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/event.h>

#include "fiber.h"
#include "clock.h"
#include "sched.h"
#include "worker.h"

/* ---- fibers ------------------------------------------------------------------------ */

static char trail[64];

static void note(char c)
{
	size_t n = strlen(trail);

	trail[n] = c;
	trail[n + 1] = '\0';
}

static void fiber_body(void *arg)
{
	note('a');
	assert_ptr_equal(fiber_current(), arg ? *(struct fiber **)arg : NULL);
	fiber_yield();
	note('b');
}

static void test_fiber_switch_and_return(void **state)
{
	struct fiber_pool *p = fiber_pool_new(64 * 1024, 4);
	struct fiber *f;

	trail[0] = '\0';
	f = fiber_new(p, fiber_body, &f);
	assert_non_null(f);
	assert_string_equal(trail, "");		/* not started before resume */
	assert_int_equal(fiber_resume(f), 0);
	note('1');
	assert_null(fiber_current());
	assert_int_equal(fiber_resume(f), 1);
	assert_string_equal(trail, "a1b");
	fiber_free(f);
	fiber_pool_free(p);
}

static void nothing(void *arg) { }

static void test_pool_reuses_stacks(void **state)
{
	struct fiber_pool *p = fiber_pool_new(10000, 2);	/* rounded up to pages */
	struct fiber *f[3];

	assert_int_equal(fiber_pool_stack_size(p) % 4096, 0);
	assert_true(fiber_pool_stack_size(p) >= 10000);
	for (int i = 0; i < 3; i++)
		assert_non_null(f[i] = fiber_new(p, nothing, NULL));
	assert_int_equal(fiber_pool_in_use(p), 3);
	assert_int_equal(fiber_pool_idle(p), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(fiber_resume(f[i]), 1);
		fiber_free(f[i]);
	}
	/* Only `keep` (2) stacks are kept. */
	assert_int_equal(fiber_pool_in_use(p), 0);
	assert_int_equal(fiber_pool_idle(p), 2);
	assert_non_null(f[0] = fiber_new(p, nothing, NULL));
	assert_int_equal(fiber_pool_idle(p), 1);
	assert_int_equal(fiber_pool_in_use(p), 1);
	/* A recycled stack runs a fiber again. */
	assert_int_equal(fiber_resume(f[0]), 1);
	fiber_free(f[0]);
	assert_int_equal(fiber_pool_idle(p), 2);
	fiber_pool_free(p);
}

/* ---- the guard region below each stack ---------------------------------------------- */

#define GUARD_MIN (64 * 1024)

struct guard_probe {
	uintptr_t frame;		/* an address in the fiber's own stack */
	uintptr_t addr[4];		/* asked about once the test filled them in */
	int in_guard[4];
};

static void guard_body(void *arg)
{
	struct guard_probe *g = arg;

	/* The frame address, not a local's: a sanitizer may keep locals elsewhere. */
	g->frame = (uintptr_t)__builtin_frame_address(0);
	fiber_yield();
	for (int i = 0; i < 4; i++)
		g->in_guard[i] = fiber_addr_in_guard((const void *)g->addr[i]);
}

/* The line of /proc/self/maps containing addr, or (ending_at) ending at it. */
static int find_mapping(uintptr_t addr, int ending_at, uintptr_t *lo, uintptr_t *hi,
    char perms[5])
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int found = 0;

	assert_non_null(f);
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		unsigned long a, b;

		if (sscanf(line, "%lx-%lx %4s", &a, &b, perms) != 3)
			continue;
		found = ending_at ? b == addr : a <= addr && addr < b;
		*lo = a;
		*hi = b;
	}
	fclose(f);
	return found;
}

/*
 * Below every stack lies an inaccessible region of at least 64 KiB, so a
 * frame up to that size cannot step over it into other memory, and a fault
 * anywhere in it is reported as a stack overflow.
 */
static void test_guard_region_below_each_stack(void **state)
{
	struct fiber_pool *p = fiber_pool_new(64 * 1024, 4);
	struct guard_probe g[2];
	struct fiber *f[2];
	uintptr_t lo, hi, glo, ghi;
	char perms[5];

	memset(g, 0, sizeof(g));
	for (int i = 0; i < 2; i++) {
		assert_non_null(f[i] = fiber_new(p, guard_body, &g[i]));
		assert_int_equal(fiber_resume(f[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		assert_true(find_mapping(g[i].frame, 0, &lo, &hi, perms));
		assert_memory_equal(perms, "rw", 2);
		assert_true(find_mapping(lo, 1, &glo, &ghi, perms));
		assert_string_equal(perms, "---p");
		assert_true(ghi - glo >= GUARD_MIN);
		g[i].addr[0] = lo - 1;
		g[i].addr[1] = lo - 32 * 1024;
		g[i].addr[2] = lo - GUARD_MIN;
		g[i].addr[3] = lo;		/* the stack's own last byte */
		assert_int_equal(fiber_resume(f[i]), 1);
		assert_int_equal(g[i].in_guard[0], 1);
		assert_int_equal(g[i].in_guard[1], 1);
		assert_int_equal(g[i].in_guard[2], 1);
		assert_int_equal(g[i].in_guard[3], 0);
		fiber_free(f[i]);
	}
	fiber_pool_free(p);
}

/* ---- the scheduler -------------------------------------------------------------------- */

struct env {
	struct event_base *base;
	struct fiber_pool *pool;
	struct sched *s;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	e->base = event_base_new();
	e->pool = fiber_pool_new(64 * 1024, 8);
	e->s = sched_new(e->base, e->pool);
	*state = e;
	return e->s ? 0 : -1;
}

static int teardown(void **state)
{
	struct env *e = *state;

	assert_int_equal(sched_count(e->s), 0);
	sched_free(e->s);
	fiber_pool_free(e->pool);
	event_base_free(e->base);
	free(e);
	return 0;
}

/* Run the scheduler and the event loop until no task is left or 5 s passed. */
static void drain(struct env *e)
{
	int64_t end = clock_ms() + 5000;

	while (sched_count(e->s) > 0 && clock_ms() < end) {
		sched_run(e->s);
		if (sched_count(e->s) == 0)
			break;
		event_base_loop(e->base, sched_pending(e->s) ? EVLOOP_NONBLOCK : EVLOOP_ONCE);
	}
	assert_int_equal(sched_count(e->s), 0);
}

struct parker {
	int64_t timeout_ms;
	int st, aborted, resumed, abort_on_sched;
	struct task *t;
};

static void parker_abort(struct task *t, void *obj)
{
	struct parker *p = obj;

	/* No cmocka assert here: it may run in a fiber (cancelled before parking). */
	p->abort_on_sched = sched_current() == NULL;
	p->aborted++;
}

static void parker_main(struct task *t, void *arg)
{
	struct parker *p = arg;

	assert_ptr_equal(sched_current(), t);
	p->st = sched_park("test", parker_abort, p, p->timeout_ms);
	p->resumed = 1;
}

static void parker_done(struct task *t, void *arg)
{
	*(int *)arg = sched_current() == NULL;
}

static void test_park_and_wake_only_queues(void **state)
{
	struct env *e = *state;
	struct parker p = { .timeout_ms = -1, .st = -1 };
	int done_on_sched = -1;

	p.t = sched_spawn(e->s, parker_main, &p, parker_done, &done_on_sched);
	assert_non_null(p.t);
	assert_int_equal(sched_count(e->s), 1);
	assert_true(sched_pending(e->s));
	assert_int_equal(sched_run(e->s), 1);
	assert_false(p.resumed);
	assert_false(sched_pending(e->s));
	/* A wake from a callback (here: the scheduler's stack) only queues. */
	sched_wake(p.t);
	sched_wake(p.t);		/* twice: still one resume */
	assert_false(p.resumed);
	assert_true(sched_pending(e->s));
	assert_int_equal(sched_run(e->s), 1);
	assert_true(p.resumed);
	assert_int_equal(p.st, 0);
	assert_int_equal(p.aborted, 0);	/* a real wake-up undoes nothing */
	assert_int_equal(done_on_sched, 1);
	assert_int_equal(sched_count(e->s), 0);
}

static void test_park_timeout(void **state)
{
	struct env *e = *state;
	struct parker p = { .timeout_ms = 20, .st = -1 };
	int64_t t0 = clock_ms();

	p.t = sched_spawn(e->s, parker_main, &p, NULL, NULL);
	drain(e);
	assert_int_equal(p.st, ETIMEDOUT);
	assert_int_equal(p.aborted, 1);
	assert_int_equal(p.abort_on_sched, 1);
	assert_true(clock_ms() - t0 >= 19);
}

static void test_cancel_parked_and_before_park(void **state)
{
	struct env *e = *state;
	struct parker a = { .timeout_ms = -1, .st = -1 }, b = { .timeout_ms = -1, .st = -1 };

	a.t = sched_spawn(e->s, parker_main, &a, NULL, NULL);
	b.t = sched_spawn(e->s, parker_main, &b, NULL, NULL);
	/* b is cancelled before it ever ran: its park fails at once. */
	sched_cancel(b.t);
	assert_true(task_cancelled(b.t));
	sched_run(e->s);
	assert_int_equal(b.st, ECANCELED);
	assert_int_equal(b.aborted, 1);
	assert_false(a.resumed);
	/* a is parked: cancel aborts its wait and queues it with ECANCELED. */
	sched_cancel(a.t);
	assert_int_equal(a.aborted, 1);
	assert_int_equal(a.abort_on_sched, 1);
	assert_false(a.resumed);
	sched_run(e->s);
	assert_int_equal(a.st, ECANCELED);
	assert_int_equal(sched_count(e->s), 0);
}

struct nc {
	struct task *t;
	int st1, st2, cancelled_after;
};

static void nocancel_main(struct task *t, void *arg)
{
	struct nc *n = arg;

	n->st1 = sched_park_nocancel("winding down", -1);
	n->cancelled_after = task_cancelled(t);
	n->st2 = sched_park("after", NULL, NULL, -1);
}

static void test_park_nocancel(void **state)
{
	struct env *e = *state;
	struct nc n = { .st1 = -1, .st2 = -1 };

	n.t = sched_spawn(e->s, nocancel_main, &n, NULL, NULL);
	sched_run(e->s);
	sched_cancel(n.t);		/* does not end the nocancel wait */
	sched_run(e->s);
	assert_int_equal(n.st1, -1);
	sched_wake(n.t);
	sched_run(e->s);
	assert_int_equal(n.st1, 0);
	/* ... but the cancellation is remembered. */
	assert_int_equal(n.cancelled_after, 1);
	assert_int_equal(n.st2, ECANCELED);
	assert_int_equal(sched_count(e->s), 0);
}

struct deferrer {
	struct sched *s;
	int step, deferred_at, deferred_in_task;
};

static void deferred(void *arg)
{
	struct deferrer *d = arg;

	d->deferred_at = d->step;
	d->deferred_in_task = sched_current() != NULL || fiber_current() != NULL;
}

static void deferrer_main(struct task *t, void *arg)
{
	struct deferrer *d = arg;

	assert_int_equal(sched_defer(d->s, deferred, d), 0);
	d->step = 1;
	(void)sched_park("yield", NULL, NULL, 0);
	d->step = 2;
}

static void test_defer_runs_on_the_scheduler_stack(void **state)
{
	struct env *e = *state;
	struct deferrer d = { .s = e->s, .deferred_at = -1, .deferred_in_task = -1 };

	sched_spawn(e->s, deferrer_main, &d, NULL, NULL);
	drain(e);
	/* After the task yielded (step 1), before it resumed (step 2). */
	assert_int_equal(d.deferred_at, 1);
	assert_int_equal(d.deferred_in_task, 0);
	assert_int_equal(d.step, 2);
}

struct dumped {
	int n;
	char what[32];
};

static void dump_fn(void *arg, const struct task *t, const char *what, int64_t ms)
{
	struct dumped *d = arg;

	d->n++;
	snprintf(d->what, sizeof(d->what), "%s", what);
}

static void test_dump(void **state)
{
	struct env *e = *state;
	struct parker p = { .timeout_ms = -1 };
	struct dumped d = { 0 };

	p.t = sched_spawn(e->s, parker_main, &p, NULL, NULL);
	sched_run(e->s);
	sched_dump(e->s, dump_fn, &d);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.what, "test");
	sched_cancel(p.t);
	sched_run(e->s);
}

/* ---- runtime: waiters and tgrun_all in a minimal worker ------------------------------- */

static struct worker W;

static struct tgrun_ctx *bg_task(struct env *e, task_fn fn, void *arg)
{
	struct tgrun_ctx *ctx = ctx_new(&W.bot, NULL);
	struct task *t = sched_spawn(e->s, fn, arg, NULL, NULL);

	assert_non_null(ctx);
	assert_non_null(t);
	ctx->task = t;
	task_set_data(t, ctx);
	return ctx;
}

static int rt_setup(void **state)
{
	struct env *e;

	if (setup(state) != 0)
		return -1;
	e = *state;
	memset(&W, 0, sizeof(W));
	W.base = e->base;
	W.pool = e->pool;
	W.sched = e->s;
	W.bot.w = &W;
	return 0;
}

static int rt_teardown(void **state)
{
	/* Contexts of finished test tasks. */
	while (!LIST_EMPTY(&W.background)) {
		LIST_FIRST(&W.background)->task = NULL;
		ctx_free(LIST_FIRST(&W.background));
	}
	return teardown(state);
}

struct wt {
	struct tgrun_waiter *w;
	int n, early;
	double timeout;
	int rc, err;
	int64_t ms;
};

static void waiter_main(struct task *t, void *arg)
{
	struct wt *x = arg;
	int64_t t0 = clock_ms();

	for (int i = 0; i < x->early; i++)
		assert_int_equal(tgrun_waiter_done(x->w), 0);
	x->rc = tgrun_waiter_wait(x->w, x->timeout);
	x->err = errno;
	x->ms = clock_ms() - t0;
}

static void test_waiter_done_before_wait(void **state)
{
	struct env *e = *state;
	struct wt x = { .early = 2, .timeout = 5 };

	x.w = tgrun_waiter_new(NULL, 2);
	bg_task(e, waiter_main, &x);
	drain(e);
	assert_int_equal(x.rc, 0);
	assert_true(x.ms < 1000);
	/* A third done() is one too many. */
	assert_int_equal(tgrun_waiter_done(x.w), -1);
	assert_int_equal(errno, EOVERFLOW);
	tgrun_waiter_free(x.w);
}

static void test_waiter_n_from_callbacks_and_timeout(void **state)
{
	struct env *e = *state;
	struct wt a = { .early = 0, .timeout = -1 }, b = { .early = 1, .timeout = 0.02 };

	a.w = tgrun_waiter_new(NULL, 3);
	b.w = tgrun_waiter_new(NULL, 2);
	bg_task(e, waiter_main, &a);
	bg_task(e, waiter_main, &b);
	sched_run(e->s);
	/* Done from outside any fiber: only queued, the waiter has not run. */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(a.rc, 0);
		assert_int_equal(tgrun_waiter_done(a.w), 0);
	}
	a.rc = 99;
	assert_true(sched_pending(e->s));
	assert_int_equal(a.rc, 99);
	drain(e);
	assert_int_equal(a.rc, 0);
	assert_int_equal(b.rc, -1);
	assert_int_equal(b.err, ETIMEDOUT);
	assert_true(b.ms >= 19);
	/* Outside a fiber, a wait that would block fails at once. */
	assert_int_equal(tgrun_waiter_wait(b.w, 10), -1);
	assert_int_equal(errno, EPERM);
	tgrun_waiter_free(a.w);
	tgrun_waiter_free(b.w);
}

static int slot_fn(struct tgrun_ctx *ctx, void *arg)
{
	intptr_t v = (intptr_t)arg;

	if (tgrun_sleep(ctx, v > 0 ? 0.01 * (double)v : 10) != 0)
		return -7;
	return (int)v - 1;
}

struct allrun {
	int flags;
	double timeout;
	int rc;
	struct tgrun_result r[3];
};

static void all_main(struct task *t, void *arg)
{
	struct allrun *x = arg;
	const tgrun_fn fns[3] = { slot_fn, slot_fn, slot_fn };
	/* slot 0 sleeps 30 ms and returns 2, slot 1 10 ms -> 0, slot 2: long sleep. */
	void *const args[3] = { (void *)(intptr_t)3, (void *)(intptr_t)1, (void *)(intptr_t)0 };

	x->rc = tgrun_all(task_data(t), 3, fns, args, x->r, x->flags, x->timeout);
}

static void test_all_in_a_background_fiber(void **state)
{
	struct env *e = *state;
	struct allrun tmo = { .flags = TGRUN_ALL_SETTLED, .timeout = 0.1 };
	struct allrun ff = { .flags = TGRUN_ALL_FAIL_FAST, .timeout = 5 };

	bg_task(e, all_main, &tmo);
	bg_task(e, all_main, &ff);
	drain(e);
	assert_int_equal(tmo.rc, -1);
	assert_int_equal(tmo.r[0].status, TGRUN_SLOT_FAILED);
	assert_int_equal(tmo.r[0].ret, 2);
	assert_int_equal(tmo.r[1].status, TGRUN_SLOT_OK);
	assert_int_equal(tmo.r[2].status, TGRUN_SLOT_TIMEOUT);
	assert_int_equal(tmo.r[2].ret, -7);
	/* Fail-fast: slot 0's failure (at 30 ms) cancels slot 2. */
	assert_int_equal(ff.rc, -1);
	assert_int_equal(ff.r[0].status, TGRUN_SLOT_FAILED);
	assert_int_equal(ff.r[1].status, TGRUN_SLOT_OK);
	assert_int_equal(ff.r[2].status, TGRUN_SLOT_CANCELLED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fiber_switch_and_return),
		cmocka_unit_test(test_pool_reuses_stacks),
		cmocka_unit_test(test_guard_region_below_each_stack),
		cmocka_unit_test_setup_teardown(test_park_and_wake_only_queues, setup, teardown),
		cmocka_unit_test_setup_teardown(test_park_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_parked_and_before_park, setup, teardown),
		cmocka_unit_test_setup_teardown(test_park_nocancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defer_runs_on_the_scheduler_stack, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_dump, setup, teardown),
		cmocka_unit_test_setup_teardown(test_waiter_done_before_wait, rt_setup, rt_teardown),
		cmocka_unit_test_setup_teardown(test_waiter_n_from_callbacks_and_timeout, rt_setup,
		    rt_teardown),
		cmocka_unit_test_setup_teardown(test_all_in_a_background_fiber, rt_setup,
		    rt_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
