/* Benchmark: the cost of one fiber switch (resume + yield) and of a sched park/wake round trip. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#include "fiber.h"
#include "sched.h"

#define ROUNDS 2000000

static long remaining;

static void pingpong(void *arg)
{
	while (remaining-- > 0)
		fiber_yield();
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void waker(struct task *t, void *arg)
{
	struct task **other = arg;

	for (long i = 0; i < ROUNDS / 4; i++) {
		if (*other != NULL)
			sched_wake(*other);
		sched_park("bench", NULL, NULL, -1);
	}
	*other = NULL;
}

int main(void)
{
	struct fiber_pool *pool = fiber_pool_new(64 * 1024, 16);
	struct fiber *f = fiber_new(pool, pingpong, NULL);
	struct event_base *base = event_base_new();
	struct sched *s = sched_new(base, pool);
	struct task *a, *b;
	struct task *pa = NULL, *pb = NULL;
	double t0, t1;
	long n = 0;

	if (pool == NULL || f == NULL || base == NULL || s == NULL)
		return 1;
	remaining = ROUNDS;
	t0 = now_s();
	while (!fiber_resume(f))
		n++;
	t1 = now_s();
	/* One round trip is two switches: scheduler -> fiber -> scheduler. */
	printf("fiber switch: %.1f ns (%ld round trips in %.3f s)\n",
	    (t1 - t0) * 1e9 / (double)(2 * n), n, t1 - t0);
	fiber_free(f);

	/* Two tasks waking each other through the run queue. */
	a = sched_spawn(s, waker, &pb, NULL, NULL);
	b = sched_spawn(s, waker, &pa, NULL, NULL);
	pa = a;
	pb = b;
	t0 = now_s();
	n = 0;
	while (sched_count(s) > 0) {
		int k = sched_run(s);

		n += k;
		if (k == 0) {
			/* The last one waits for a wake-up that will not come: done. */
			break;
		}
	}
	t1 = now_s();
	printf("park + wake + resume through the scheduler: %.1f ns per resume (%ld resumes)\n",
	    (t1 - t0) * 1e9 / (double)n, n);
	return 0;
}
