/*
 * reply.h - the answer most test handlers give: "u<update_id>" to the
 * update's chat, which the fake Bot API checks for loss, duplicates and
 * order (see echo_id.c).
 */
#ifndef TGRUN_TEST_REPLY_H
#define TGRUN_TEST_REPLY_H

#include <stdio.h>
#include <tgrun.h>

/*
 * Sends "u<update_id>", or "u<update_id> <what>" when what is not NULL, to
 * the update's chat: 0, or -1 when the call failed.
 */
static inline int reply_uid(struct tgrun_ctx *ctx, const char *what)
{
	char text[64];
	json_t *res;

	snprintf(text, sizeof(text), "u%lld%s%s", (long long)tgrun_update_id(ctx),
	    what ? " " : "", what ? what : "");
	res = tgrun_send_text(ctx, tgrun_chat_id(ctx), text, NULL);
	json_decref(res);
	return res ? 0 : -1;
}

/*
 * Echoes any update as the fake Bot API expects: "u<update_id>[ <tag>]" to
 * its chat, an answer to an inline query (matched by its id), nothing for an
 * update without a chat. 0, or -1 (logged) when the call failed.
 */
static inline int echo_update(struct tgrun_ctx *ctx, const json_t *update, const char *tag)
{
	struct tgrun_error err;
	char text[64];
	json_t *res, *iq;

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
		tgrun_log(tgrun_bot(ctx), 4, "update %lld: %s",
		    (long long)tgrun_update_id(ctx), err.description);
		return -1;
	}
	json_decref(res);
	return 0;
}

#endif
