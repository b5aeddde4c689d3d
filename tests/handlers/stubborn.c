/*
 * stubborn.c - test handler that ignores cancellation. Every update first
 * sends "b<update_id>" (begin) to its chat. Then:
 *   "block S"  blocks the whole worker for S seconds without yielding, then
 *              tries to send "u<update_id>" (fails once cancelled);
 *   "spin"     loops on the CPU forever (only the heartbeat can end it);
 *   "nap S"    sleeps S seconds, yielding, then sends "u<update_id>"; a
 *              cancel ends it (the one command that heeds one);
 *   otherwise  sends "u<update_id>".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tgrun.h>

#include "reply.h"

TGRUN_HANDLER;

static void say(struct tgrun_ctx *ctx, char prefix)
{
	char text[64];

	snprintf(text, sizeof(text), "%c%lld", prefix, (long long)tgrun_update_id(ctx));
	json_decref(tgrun_send_text(ctx, tgrun_chat_id(ctx), text, NULL));
}

int tgrun_handle(struct tgrun_ctx *ctx, const json_t *update)
{
	const char *text = json_string_value(json_object_get(
	    json_object_get(update, "message"), "text"));

	if (tgrun_chat_id(ctx) == 0)
		return 0;
	say(ctx, 'b');
	if (text != NULL && strncmp(text, "block ", 6) == 0) {
		double s = atof(text + 6);
		struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

		while (nanosleep(&ts, &ts) != 0)
			;
	} else if (text != NULL && strncmp(text, "nap ", 4) == 0) {
		if (tgrun_sleep(ctx, atof(text + 4)) != 0)
			return -1;
	} else if (text != NULL && strcmp(text, "spin") == 0) {
		volatile unsigned long n = 0;

		for (;;)
			n++;
	}
	return reply_uid(ctx, NULL);
}
