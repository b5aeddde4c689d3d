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

#endif
