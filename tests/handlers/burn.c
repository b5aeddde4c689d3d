/*
 * burn.c - test handler for CPU-bound work: spends [handler] burn_us
 * microseconds of this thread's CPU time on each update (default 1000, 0..10 s),
 * without yielding, then echoes it as echo_id does ("u<update_id>[ <tag>]"),
 * so the fake Bot API can check for loss, duplicates and order.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <tgrun.h>
#include "reply.h"

TGRUN_HANDLER;

static long long burn_us = 1000;

int tgrun_init(struct tgrun_bot *bot)
{
	const char *v = tgrun_config(bot, "burn_us");
	char *end;

	if (v == NULL)
		return 0;
	errno = 0;
	burn_us = strtoll(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || burn_us < 0 || burn_us > 10000000) {
		tgrun_log(bot, 3, "burn: [handler] burn_us = %s: expected 0..10000000", v);
		return -1;
	}
	return 0;
}

static long long thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Keeps the loop's work observable, so the compiler cannot drop it. */
static volatile unsigned long burn_sink;

int tgrun_handle(struct tgrun_ctx *ctx, const json_t *update)
{
	long long end = thread_cpu_ns() + burn_us * 1000;
	unsigned long x = (unsigned long)tgrun_update_id(ctx);
	int i;

	while (thread_cpu_ns() < end)
		for (i = 0; i < 1000; i++)
			x = x * 6364136223846793005UL + 1442695040888963407UL;
	burn_sink = x;
	return echo_update(ctx, update, tgrun_config(tgrun_bot(ctx), "tag"));
}
