/* Unit tests of common/throttle.c: bucket math at explicit times, and processes sharing it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "throttle.h"
#include "clock.h"

#define S 1000000LL		/* one second in microseconds */
#define M (60 * S)
#define BIG 1000000		/* a rate that never limits */

static struct throttle *make(int64_t g, int64_t gp, int64_t c, int64_t cp,
    int64_t gr, int64_t grp)
{
	struct throttle_rates r = { { g, gp }, { c, cp }, { gr, grp } };
	struct throttle *t = throttle_create(&r);

	assert_non_null(t);
	return t;
}

/* 0 when granted at now_us; else the wait in microseconds. */
static int64_t try(struct throttle *t, int64_t chat, int64_t now_us)
{
	int64_t wait = -1;
	int r = throttle_acquire(t, chat, now_us, &wait);

	assert_true(r == 0 || r == 1);
	if (r == 0)
		assert_int_equal(wait, 0);
	else
		assert_true(wait > 0);
	return r == 0 ? 0 : wait;
}

/* ---- bucket math ------------------------------------------------------------------- */

static void test_chat_burst_then_wait(void **state)
{
	struct throttle *t = make(BIG, S, 4, S, BIG, M);
	int64_t now = 10 * S;

	for (int i = 0; i < 4; i++)
		assert_int_equal(try(t, 5, now), 0);
	assert_int_equal(try(t, 5, now), 250000);	/* one token per 1/4 s */
	assert_int_equal(try(t, 5, now + 100000), 150000);
	throttle_close(t);
}

static void test_refill_is_continuous_and_capped(void **state)
{
	struct throttle *t = make(BIG, S, 4, S, BIG, M);
	int64_t now = 10 * S;

	for (int i = 0; i < 4; i++)
		assert_int_equal(try(t, 5, now), 0);
	assert_int_equal(try(t, 5, now + 249999), 1);
	assert_int_equal(try(t, 5, now + 250000), 0);
	assert_int_equal(try(t, 5, now + 250000), 250000);
	/* 10 s idle refills to the capacity (4), not to 40. */
	now += 11 * S;
	for (int i = 0; i < 4; i++)
		assert_int_equal(try(t, 5, now), 0);
	assert_int_equal(try(t, 5, now), 250000);
	throttle_close(t);
}

static void test_wait_is_enough(void **state)
{
	struct throttle *t = make(3, S, BIG, S, BIG, M);
	int64_t now = 5 * S, w;

	for (int i = 0; i < 3; i++)
		assert_int_equal(try(t, 0, now), 0);
	/* 1/3 s, rounded up (never faster than the rate). */
	w = try(t, 0, now);
	assert_int_equal(w, 333334);
	assert_int_not_equal(try(t, 0, now + w - 1), 0);
	assert_int_equal(try(t, 0, now + w), 0);
	throttle_close(t);
}

static void test_global_limits_many_chats(void **state)
{
	struct throttle *t = make(3, S, 1, S, 20, M);
	int64_t now = 5 * S;

	assert_int_equal(try(t, 101, now), 0);
	assert_int_equal(try(t, 102, now), 0);
	assert_int_equal(try(t, 103, now), 0);
	assert_int_equal(try(t, 104, now), 333334);	/* global empty */
	assert_int_equal(try(t, 101, now), S);		/* its chat bucket is the longer wait */
	assert_int_equal(try(t, 104, now + 333334), 0);
	throttle_close(t);
}

static void test_group_limit_only_for_groups(void **state)
{
	struct throttle *t = make(BIG, S, 10, S, 2, M);
	int64_t now = 5 * S;

	assert_int_equal(try(t, -1001, now), 0);
	assert_int_equal(try(t, -1001, now), 0);
	assert_int_equal(try(t, -1001, now), 30 * S);	/* 2 per minute */
	assert_int_equal(try(t, -1002, now), 0);	/* another group: its own */
	for (int i = 0; i < 10; i++)			/* a private chat: 10/s only */
		assert_int_equal(try(t, 1001, now), 0);
	assert_int_equal(try(t, 1001, now), 100000);
	assert_int_equal(try(t, -1001, now + 30 * S), 0);
	throttle_close(t);
}

static void test_global_only_without_chat(void **state)
{
	struct throttle *t = make(5, S, 1, S, 1, M);
	int64_t now = 5 * S;

	for (int i = 0; i < 5; i++)
		assert_int_equal(try(t, 0, now), 0);	/* chat 1/s does not apply */
	assert_int_equal(try(t, 0, now), 200000);
	throttle_close(t);
}

/* A refusal takes nothing: not from the global bucket, not from the chat's. */
static void test_no_partial_takes(void **state)
{
	struct throttle *t = make(3, S, 1, S, 1, M);
	int64_t now = 5 * S;

	assert_int_equal(try(t, -7, now), 0);
	for (int i = 0; i < 50; i++)			/* chat and group refuse */
		assert_int_equal(try(t, -7, now), 60 * S);
	assert_int_equal(try(t, 8, now), 0);		/* global still has 2 */
	assert_int_equal(try(t, 9, now), 0);
	assert_int_equal(try(t, 10, now), 333334);
	/* Global refuses: chat 11's bucket stays full for later. */
	assert_int_equal(try(t, 11, now), 333334);
	assert_int_equal(try(t, 11, now + 333334), 0);
	throttle_close(t);
}

static void test_rates_change_in_place(void **state)
{
	struct throttle *t = make(BIG, S, 1, M, BIG, M);
	struct throttle_rates r = { { BIG, S }, { 10, S }, { BIG, M } };
	int64_t now = 5 * S;

	assert_int_equal(try(t, 3, now), 0);
	assert_int_equal(try(t, 3, now), M);
	assert_int_equal(throttle_set_rates(t, &r), 0);
	/* The minute of debt is cut to the new bucket's size (1 s). */
	assert_int_equal(try(t, 3, now), 100000);
	r.chat.n = 0;
	assert_int_equal(throttle_set_rates(t, &r), -1);
	assert_int_equal(errno, EINVAL);
	throttle_close(t);
}

/* Chats that land in one slot share it while busy: slower, never faster. */
static void test_many_chats_never_exceed(void **state)
{
	struct throttle *t = make(BIG, S, 1, S, BIG, M);
	uint64_t granted, refused, shared;
	int64_t now = 5 * S;
	int n = 0;

	for (int64_t c = 1; c <= 200000; c++)
		n += try(t, c, now) == 0;
	/* Each busy slot refused the chats that came later to it. */
	assert_true(n > 60000 && n <= THROTTLE_SLOTS);
	for (int64_t c = 1; c <= 200000; c++)
		assert_int_not_equal(try(t, c, now), 0);	/* 1/s each: all spent */
	throttle_counters(t, &granted, &refused, &shared);
	assert_int_equal(granted, (uint64_t)n);
	assert_int_equal(refused, 200000 + 200000 - (uint64_t)n);
	assert_int_equal(shared, 0);	/* busy slots refuse, they never grant twice */
	throttle_close(t);
}

static void test_method_counts(void **state)
{
	static const char *const yes[] = { "sendMessage", "sendPhoto", "sendMediaGroup",
	    "sendDocument", "sendPoll", "copyMessage", "copyMessages", "forwardMessage",
	    "forwardMessages", "sendSticker" };
	static const char *const no[] = { "sendChatAction", "answerCallbackQuery", "getMe",
	    "editMessageText", "getUpdates", "deleteMessage", "" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		assert_int_equal(throttle_method_counts(yes[i]), 1);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (throttle_method_counts(no[i]) != 0)
			fail_msg("%s counted", no[i]);
}

static void test_attach_checks(void **state)
{
	struct throttle *t = make(BIG, S, 1, S, 1, M);
	char err[256];
	int fd;

	assert_null(throttle_attach(987, err, sizeof(err)));
	assert_non_null(strstr(err, "fd 987"));
	fd = memfd_create("other", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_null(throttle_attach(fd, err, sizeof(err)));
	assert_non_null(strstr(err, "not the master's throttle memory"));
	close(fd);
	throttle_close(t);
}

/* ---- processes ----------------------------------------------------------------------- */

static struct throttle *attach_copy(struct throttle *t)
{
	char err[256];
	int fd = dup(throttle_fd(t));
	struct throttle *a;

	assert_true(fd >= 0);
	a = throttle_attach(fd, err, sizeof(err));
	if (a == NULL)
		fail_msg("%s", err);
	return a;
}

/*
 * Fork n (at most 8) children running fn on their own attachment of t, wait
 * for them all: the sum of fn's returns (their exit statuses).
 */
static int children_total(struct throttle *t, int n, int (*fn)(struct throttle *))
{
	pid_t pids[8];
	int st, total = 0;

	assert_true(n <= 8);
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			struct throttle *a = attach_copy(t);

			_exit(fn(a));
		}
		pids[i] = pid;
	}
	for (int i = 0; i < n; i++) {
		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		assert_true(WIFEXITED(st));
		total += WEXITSTATUS(st);
	}
	return total;
}

/* At one frozen instant only the burst can be granted, however the processes race. */
static int hammer_frozen(struct throttle *a)
{
	int64_t w;
	int got = 0;

	for (int i = 0; i < 200000; i++)
		got += throttle_acquire(a, 42, S, &w) == 0;
	return got;		/* at most the burst (100): fits an exit status */
}

static void test_two_processes_frozen_time(void **state)
{
	struct throttle *t = make(100, S, BIG, S, BIG, M);
	uint64_t granted, refused, shared;

	assert_int_equal(children_total(t, 2, hammer_frozen), 100);
	throttle_counters(t, &granted, &refused, &shared);
	assert_int_equal(granted, 100);
	assert_int_equal(refused, 400000 - 100);
	throttle_close(t);
}

/* Real time: grants over the run stay within burst + rate * elapsed. */
static int hammer_real(struct throttle *a)
{
	int64_t end = clock_us() + 500000, w;
	int got = 0;

	while (clock_us() < end)
		got += throttle_acquire(a, -42, clock_us(), &w) == 0;
	return got;
}

static void test_two_processes_real_time(void **state)
{
	/* Group 20/s with burst 20 limits; the rest are far above it. */
	struct throttle *t = make(BIG, S, BIG, S, 20, S);
	int64_t t0 = clock_us(), elapsed;
	int total;

	total = children_total(t, 2, hammer_real);
	elapsed = clock_us() - t0;
	assert_true(total >= 20);
	if (total > 20 + 1 + (int)(20 * elapsed / S))
		fail_msg("%d grants in %lld us at 20/s with a burst of 20", total,
		    (long long)elapsed);
	throttle_close(t);
}

/* A worker killed inside the lock: the next taker recovers it. */
static void test_killed_holder_does_not_deadlock(void **state)
{
	struct throttle *t = make(10, S, BIG, S, BIG, M);
	int64_t w;
	int p[2], st;
	pid_t pid;
	char c;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct throttle *a = attach_copy(t);

		if (throttle_test_hold_lock(a) != 0 || write(p[1], "L", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);		/* it holds the lock now */
	close(p[0]);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	alarm(10);			/* a deadlock fails the test instead of hanging it */
	assert_int_equal(throttle_acquire(t, 1, 7 * S, &w), 0);
	for (int i = 0; i < 9; i++)
		assert_int_equal(throttle_acquire(t, 1, 7 * S, &w), 0);
	assert_int_equal(throttle_acquire(t, 1, 7 * S, &w), 1);
	alarm(0);
	throttle_close(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chat_burst_then_wait),
		cmocka_unit_test(test_refill_is_continuous_and_capped),
		cmocka_unit_test(test_wait_is_enough),
		cmocka_unit_test(test_global_limits_many_chats),
		cmocka_unit_test(test_group_limit_only_for_groups),
		cmocka_unit_test(test_global_only_without_chat),
		cmocka_unit_test(test_no_partial_takes),
		cmocka_unit_test(test_rates_change_in_place),
		cmocka_unit_test(test_many_chats_never_exceed),
		cmocka_unit_test(test_method_counts),
		cmocka_unit_test(test_attach_checks),
		cmocka_unit_test(test_two_processes_frozen_time),
		cmocka_unit_test(test_two_processes_real_time),
		cmocka_unit_test(test_killed_holder_does_not_deadlock),
	};

	return cmocka_run_group_tests_name("throttle", tests, NULL, NULL);
}
