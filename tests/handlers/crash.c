/*
 * crash.c - test handler: echoes "u<update_id>", but a text containing
 * "#crash" dereferences NULL (the worker dies with SIGSEGV) and "#exit"
 * calls exit(3). [handler] init = fail makes tgrun_init fail; init = slow
 * makes it take 1.5 s (a reload that takes a while).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tgrun.h>

#include "reply.h"

TGRUN_HANDLER;

int tgrun_init(struct tgrun_bot *bot)
{
	const char *init = tgrun_config(bot, "init");

	if (init != NULL && strcmp(init, "fail") == 0) {
		tgrun_log(bot, 3, "crash.so: init fails as configured");
		return -1;
	}
	if (init != NULL && strcmp(init, "slow") == 0) {
		struct timespec ts = { 1, 500000000 };

		while (nanosleep(&ts, &ts) != 0)
			;
	}
	return 0;
}

int tgrun_handle(struct tgrun_ctx *ctx, const json_t *update)
{
	const char *text = json_string_value(json_object_get(
	    json_object_get(update, "message"), "text"));

	if (text != NULL && strstr(text, "#crash") != NULL) {
		volatile int *p = NULL;

		*p = 1;
	}
	if (text != NULL && strstr(text, "#exit") != NULL)
		exit(3);
	if (tgrun_chat_id(ctx) == 0)
		return 0;
	return reply_uid(ctx, NULL);
}
