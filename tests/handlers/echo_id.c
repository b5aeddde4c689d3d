/*
 * echo_id.c - test handler: sends "u<update_id>" to the update's chat, so the
 * fake Bot API can check for loss, duplicates and order. Inline queries are
 * answered (the fake server matches them by id); updates without a chat are
 * done without a call. With [handler] tag = X the text is "u<id> X"; with
 * log_text = yes a message's text is also logged (tgrun_log, as warning).
 */
#include <string.h>
#include <tgrun.h>
#include "reply.h"

TGRUN_HANDLER;

int tgrun_handle(struct tgrun_ctx *ctx, const json_t *update)
{
	const char *log_text = tgrun_config(tgrun_bot(ctx), "log_text");

	if (log_text != NULL && strcmp(log_text, "yes") == 0)
		tgrun_log(tgrun_bot(ctx), 4, "echo_id: text: %s", json_string_value(
		    json_object_get(json_object_get(update, "message"), "text")));
	return echo_update(ctx, update, tgrun_config(tgrun_bot(ctx), "tag"));
}
