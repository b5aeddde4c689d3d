/*
 * echo.c - the smallest useful tgrun handler.
 *
 * It sends every text message back to the chat it came from, as a reply
 * to that message, and answers callback queries (the buttons of inline
 * keyboards) so the client stops showing its progress spinner.
 *
 * Build:  cc -shared -fPIC -Wl,-z,noexecstack $(pkg-config --cflags tgrun) \
 *             -o echo.so echo.c
 * Config: [workers] handler = /path/to/echo.so
 */
#include <tgrun.h>

TGRUN_HANDLER;

int tgrun_handle(struct tgrun_ctx *ctx, const json_t *update)
{
	struct tgrun_error err;
	json_t *msg, *cq, *res;
	const char *text;

	/* A button press: acknowledge it (Telegram gives us about 15 s). */
	cq = json_object_get(update, "callback_query");
	if (cq != NULL) {
		res = tgrun_call(ctx, "answerCallbackQuery",
		    json_pack("{s:O, s:s}", "callback_query_id",
		    json_object_get(cq, "id"), "text", "got it"), &err);
		json_decref(res);
		return res ? 0 : -1;
	}

	/* A text message: say it back, as a reply. Other updates are ignored. */
	msg = json_object_get(update, "message");
	text = json_string_value(json_object_get(msg, "text"));
	if (text == NULL)
		return 0;
	res = tgrun_call(ctx, "sendMessage", json_pack("{s:I, s:s, s:{s:O}}",
	    "chat_id", (json_int_t)tgrun_chat_id(ctx), "text", text,
	    "reply_parameters", "message_id", json_object_get(msg, "message_id")),
	    &err);
	if (res == NULL) {
		tgrun_log(tgrun_bot(ctx), 4, "echo: sendMessage failed: %s",
		    err.description);
		return -1;
	}
	json_decref(res);
	return 0;
}
