/*
 * flaky.c - test handler: replies "u<update_id> a<attempt>", except that a
 * message whose text holds "#failK" (K a digit) fails its first K attempts
 * with tgrun_fail (a text with an escape character in it), "#callfail"
 * fails every attempt after a Bot API call that failed (no tgrun_fail),
 * "#bare" fails every attempt with a bare -1, "#final" fails with
 * tgrun_no_retry, and "#slow" sleeps 60 s (for update_timeout) and fails
 * when cancelled.
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
	const char *k = text ? strstr(text, "#fail") : NULL;
	char what[32];

	if (k != NULL && k[5] >= '0' && k[5] <= '9' &&
	    tgrun_attempt(ctx) <= k[5] - '0')
		return tgrun_fail(ctx, "flaky: attempt %d fails \x1b[2J as told\n"
		    "second line", tgrun_attempt(ctx));
	if (text != NULL && strstr(text, "#callfail") != NULL) {
		json_decref(tgrun_call(ctx, "no-such-method", NULL, NULL));
		return -1;
	}
	if (text != NULL && strstr(text, "#bare") != NULL)
		return -1;
	if (text != NULL && strstr(text, "#final") != NULL) {
		tgrun_no_retry(ctx);
		return tgrun_fail(ctx, "flaky: no point in trying again");
	}
	if (text != NULL && strstr(text, "#slow") != NULL &&
	    tgrun_sleep(ctx, 60) != 0)
		return -1;
	snprintf(what, sizeof(what), "a%d", tgrun_attempt(ctx));
	return reply_uid(ctx, what);
}
