/*
 * slow.c - test handler: like echo_id, but a text "sleep <seconds>" (or
 * containing "#slow") sleeps first ([handler] slow_seconds, default 2).
 * [handler] max_sleep caps every sleep (a restart can finish work quickly).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tgrun.h>

#include "reply.h"

TGRUN_HANDLER;

int tgrun_handle(struct tgrun_ctx *ctx, const json_t *update)
{
	const char *text = json_string_value(json_object_get(
	    json_object_get(update, "message"), "text"));
	const char *dflt = tgrun_config(tgrun_bot(ctx), "slow_seconds");
	const char *cap = tgrun_config(tgrun_bot(ctx), "max_sleep");
	double secs = 0;

	if (text != NULL && strncmp(text, "sleep ", 6) == 0)
		secs = atof(text + 6);
	else if (text != NULL && strstr(text, "#slow") != NULL)
		secs = dflt ? atof(dflt) : 2.0;
	if (cap != NULL && secs > atof(cap))
		secs = atof(cap);
	if (secs > 0 && tgrun_sleep(ctx, secs) != 0)
		return -1;
	if (tgrun_chat_id(ctx) == 0)
		return 0;
	return reply_uid(ctx, NULL);
}
