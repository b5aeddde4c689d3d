/*
 * flood.c - test handler for [throttle] (tests/integration/test_throttle.py):
 * sends one message "u<update_id> w<worker index>" to a chat: the one the
 * message text names when it is an integer, else [handler] target, else the
 * update's own chat. Many updates can so flood one chat from every worker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <tgrun.h>

TGRUN_HANDLER;

static int64_t parse_chat(const char *s)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return 0;
	v = strtoll(s, &end, 10);
	return *end == '\0' ? v : 0;
}

int tgrun_handle(struct tgrun_ctx *ctx, const json_t *update)
{
	struct tgrun_bot *bot = tgrun_bot(ctx);
	const char *text = json_string_value(json_object_get(
	    json_object_get(update, "message"), "text"));
	int64_t chat = parse_chat(text);
	struct tgrun_error err;
	char msg[64];
	json_t *res;

	if (chat == 0)
		chat = parse_chat(tgrun_config(bot, "target"));
	if (chat == 0)
		chat = tgrun_chat_id(ctx);
	snprintf(msg, sizeof(msg), "u%lld w%d", (long long)tgrun_update_id(ctx),
	    tgrun_worker_index(bot));
	res = tgrun_send_text(ctx, chat, msg, &err);
	if (res == NULL) {
		tgrun_log(bot, 4, "flood: update %lld: %s",
		    (long long)tgrun_update_id(ctx), err.description);
		return -1;
	}
	json_decref(res);
	return 0;
}
