/* Unit tests of the worker's transfer core (worker/xfer.c) as tgrun_call uses it. */
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

#include "clock.h"
#include "evcurl.h"
#include "fiber.h"
#include "sched.h"
#include "throttle.h"
#include "worker.h"
#include "wstats.h"
#include "wtest.h"

#define CHAT 5

static int setup(void **state)
{
	/* Per chat one message per 20 ms; the rest never limits. */
	struct throttle_rates r = { { 1000000, 1000000 }, { 1, 20000 }, { 1000000, 1000000 } };

	/*
	 * No stack is kept: a finished fiber's stack is unmapped at once, so
	 * anything still pointing into it faults instead of reading stale bytes.
	 */
	if (wtest_setup(0) != 0)
		return -1;
	W.ec = evcurl_new(W.base, 1);
	W.stats = wstats_new();
	W.throttle = throttle_create(&r);
	/* Nothing listens there; no test here may reach it. */
	W.bot.set.net.api_url = "http://127.0.0.1:9";
	W.bot.set.net.token = "1:test";
	W.bot.set.api_timeout_ms = 2000;
	W.bot.set.api_retries = 0;
	return W.ec && W.stats && W.throttle ? 0 : -1;
}

static int teardown(void **state)
{
	while (!LIST_EMPTY(&W.background)) {
		LIST_FIRST(&W.background)->task = NULL;
		ctx_free(LIST_FIRST(&W.background));
	}
	api_free_requests(&W);
	throttle_close(W.throttle);
	wstats_free(W.stats);
	evcurl_free(W.ec);
	wtest_teardown();
	return 0;
}

/* A task whose context stays on W.background when it ends (teardown frees it). */
static struct task *bg_task(task_fn fn, void *arg)
{
	return wtest_spawn(fn, arg, NULL);
}

/* Run the event loop until a task is queued to run, at most 5 s. */
static void loop_until_pending(void)
{
	int64_t end = clock_ms() + 5000;

	while (!sched_pending(W.sched) && clock_ms() < end)
		event_base_loop(W.base, EVLOOP_ONCE);
	assert_true(sched_pending(W.sched));
}

struct caller {
	int returned, got_result;
	struct tgrun_error err;
};

static void caller_main(struct task *t, void *arg)
{
	struct caller *c = arg;
	json_t *res = tgrun_call(task_data(t), "sendMessage",
	    json_pack("{s:I, s:s}", "chat_id", (json_int_t)CHAT, "text", "hi"), &c->err);

	c->got_result = res != NULL;
	c->returned = 1;
	json_decref(res);
}

/*
 * The fiber is cancelled after its throttle wait ended but before it ran
 * again: the throttle then grants, and the attempt parks an already
 * cancelled task, which returns at once. The transfer's start was deferred
 * to the scheduler's stack; it must find nothing of the returned call
 * (whose fiber is gone) and start nothing.
 */
static void test_call_cancelled_between_throttle_and_start(void **state)
{
	struct caller c = { 0 };
	uint64_t granted, refused, shared;
	int64_t wait_us;
	struct task *t;

	/* The chat's one token is gone: the call waits its turn (about 20 ms). */
	assert_int_equal(throttle_acquire(W.throttle, CHAT, clock_us(), &wait_us), 0);
	t = bg_task(caller_main, &c);
	sched_run(W.sched);
	assert_false(c.returned);
	assert_false(sched_pending(W.sched));
	/* The throttle wait's timer fires: the task is queued, not yet resumed ... */
	loop_until_pending();
	/* ... and cancelled now, while it is not parked. */
	sched_cancel(t);
	wtest_drain(5000);
	assert_true(c.returned);
	assert_false(c.got_result);
	assert_int_equal(c.err.kind, TGRUN_ERR_CANCELLED);
	/* The throttle did let it go: the cancel was seen by the transfer, not the wait. */
	throttle_counters(W.throttle, &granted, &refused, &shared);
	assert_int_equal(granted, 2);
	/* Nothing was started, nor is anything left to start. */
	assert_int_equal(evcurl_running(W.ec), 0);
	assert_false(sched_pending(W.sched));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_call_cancelled_between_throttle_and_start,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
