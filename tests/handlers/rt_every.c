/*
 * rt_every.c - test handler: in tgrun_init it calls the Bot API (there is no
 * fiber there: it must fail at once with TGRUN_ERR_INVALID, logged), then
 * worker 0 runs a tgrun_every job each [handler] every seconds (default 0.2)
 * that sends "tick <n>" to chat [handler] chat (default 1). Updates are
 * echoed as "u<update_id>".
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <tgrun.h>

#include "reply.h"

TGRUN_HANDLER;

static int64_t chat = 1;
static int ticks;

static int tick(struct tgrun_ctx *ctx, void *arg)
{
	char text[32];
	json_t *r;

	snprintf(text, sizeof(text), "tick %d", ++ticks);
	r = tgrun_send_text(ctx, chat, text, NULL);
	json_decref(r);
	return r ? 0 : -1;
}

int tgrun_init(struct tgrun_bot *bot)
{
	const char *every = tgrun_config(bot, "every");
	const char *c = tgrun_config(bot, "chat");
	struct tgrun_error err;
	struct timespec t0, t1;
	json_t *r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = tgrun_call(NULL, "getMe", NULL, &err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	tgrun_log(bot, 4, "rt_every: tgrun_call in init: %s kind=%d (%s) in %ld ms",
	    r ? "result" : "NULL", (int)err.kind, err.description,
	    (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
	json_decref(r);
	if (c != NULL)
		chat = atoll(c);
	if (tgrun_worker_index(bot) != 0)
		return 0;
	return tgrun_every(bot, every ? atof(every) : 0.2, tick, NULL);
}

int tgrun_handle(struct tgrun_ctx *ctx, const json_t *update)
{
	if (tgrun_chat_id(ctx) == 0)
		return 0;
	return reply_uid(ctx, NULL);
}
