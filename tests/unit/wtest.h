/*
 * wtest.h - the harness of the unit tests that run fibers on a bare struct
 * worker W (no master, no handler): an event base, a fiber pool and a
 * scheduler, tasks that carry a context of W's bot, and a loop that runs
 * them to the end. Include it after cmocka.h and worker.h.
 */
#ifndef TGRUN_TESTS_WTEST_H
#define TGRUN_TESTS_WTEST_H

#include <stdint.h>
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "fiber.h"
#include "sched.h"
#include "worker.h"

static struct worker W;

/* W with an event base, a pool of 64 KiB stacks (keeping `keep` of them) and a scheduler. */
static inline int wtest_setup(size_t keep)
{
	memset(&W, 0, sizeof(W));
	W.bot.w = &W;
	W.base = event_base_new();
	W.pool = fiber_pool_new(64 * 1024, keep);
	W.sched = W.base && W.pool ? sched_new(W.base, W.pool) : NULL;
	return W.sched ? 0 : -1;
}

/* Frees what wtest_setup made; what a test added to W it frees first. */
static inline void wtest_teardown(void)
{
	sched_free(W.sched);
	fiber_pool_free(W.pool);
	event_base_free(W.base);
}

/* A task running fn(t, arg) with a new context of W's bot as its data; done as sched_spawn's. */
static inline struct task *wtest_spawn(task_fn fn, void *arg, task_fn done)
{
	struct tgrun_ctx *ctx = ctx_new(&W.bot, NULL);
	struct task *t = sched_spawn(W.sched, fn, arg, done, NULL);

	assert_non_null(ctx);
	assert_non_null(t);
	ctx->task = t;
	task_set_data(t, ctx);
	return t;
}

/* Run tasks and the event loop until no task is left, at most `ms` milliseconds. */
static inline void wtest_drain(int64_t ms)
{
	int64_t end = clock_ms() + ms;

	while (sched_count(W.sched) > 0 && clock_ms() < end) {
		sched_run(W.sched);
		if (sched_count(W.sched) > 0)
			event_base_loop(W.base, sched_pending(W.sched) ?
			    EVLOOP_NONBLOCK : EVLOOP_ONCE);
	}
	assert_int_equal(sched_count(W.sched), 0);
}

#endif
