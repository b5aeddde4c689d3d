/*
 * echo_id.c - test handler: sends "u<update_id>" to the update's chat, so the
 * fake Bot API can check for loss, duplicates and order. Inline queries are
 * answered (the fake server matches them by id); updates without a chat are
 * done without a call. With [handler] tag = X the text is "u<id> X"; with
 * log_text = yes a message's text is also logged (tgrun_log, as warning).
 */
#include <stdio.h>
#include <string.h>
#include <tgrun.h>

TGRUN_HANDLER;

int tgrun_handle(struct tgrun_ctx *ctx, const json_t *update)
{
	const char *tag = tgrun_config(tgrun_bot(ctx), "tag");
	const char *log_text = tgrun_config(tgrun_bot(ctx), "log_text");
	struct tgrun_error err;
	char text[64];
	json_t *res, *iq;

	if (log_text != NULL && strcmp(log_text, "yes") == 0)
		tgrun_log(tgrun_bot(ctx), 4, "echo_id: text: %s", json_string_value(
		    json_object_get(json_object_get(update, "message"), "text")));
	snprintf(text, sizeof(text), "u%lld%s%s", (long long)tgrun_update_id(ctx),
	    tag ? " " : "", tag ? tag : "");
	iq = json_object_get(update, "inline_query");
	if (iq != NULL) {
		res = tgrun_call(ctx, "answerInlineQuery", json_pack(
		    "{s:O, s:[{s:s, s:s, s:s, s:{s:s}}]}",
		    "inline_query_id", json_object_get(iq, "id"), "results",
		    "type", "article", "id", text, "title", text,
		    "input_message_content", "message_text", text), &err);
	} else if (tgrun_chat_id(ctx) != 0) {
		res = tgrun_send_text(ctx, tgrun_chat_id(ctx), text, &err);
	} else {
		return 0;
	}
	if (res == NULL) {
		tgrun_log(tgrun_bot(ctx), 4, "echo_id: update %lld: %s",
		    (long long)tgrun_update_id(ctx), err.description);
		return -1;
	}
	json_decref(res);
	return 0;
}
