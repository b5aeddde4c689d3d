/* Bot API methods other than getUpdates: recording, echo detection, results. */
#include "methods.h"
#include "files.h"
#include "message.h"
#include "poll.h"
#include "record.h"
#include "stats.h"
#include "stream.h"
#include "util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

void
methods_record(struct call *c)
{
	struct record *r = c->app->record;

	if (c->params.raw != NULL) {
		record_add(r, c->mid, c->params.raw, c->params.raw_len, c->t_ms, c->via);
	} else {
		char *s = json_dumps(c->params.obj, JSON_COMPACT);

		record_add(r, c->mid, s ? s : "{}", s ? strlen(s) : 2, c->t_ms, c->via);
		free(s);
	}
}

/* "u<id>" at the start of text, followed by whitespace or the end. */
static int
echo_id(const char *text, long long *id)
{
	const char *p = text + 1;
	long long v = 0;

	if (text[0] != 'u' || !isdigit((unsigned char)*p))
		return 0;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (INT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (*p - '0');
	}
	if (*p != '\0' && !isspace((unsigned char)*p))
		return 0;
	*id = v;
	return 1;
}

/* An integer parameter, given as a JSON number or as decimal text. */
static int
int_of(const json_t *v, long long *out)
{
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 1;
	}
	return json_is_string(v) && util_parse_i64(json_string_value(v), out) == 0;
}

static void
detect_echo(struct call *c)
{
	struct app *app = c->app;
	const char *text = json_string_value(json_object_get(c->params.obj, "text"));
	long long id;
	long idx = -1;

	if (text != NULL && echo_id(text, &id))
		idx = stream_find(app->stream, id);
	if (idx < 0 && text != NULL) {
		/* A reply to a `message` update echoes it (the echo example replies). */
		json_t *rp = json_object_get(c->params.obj, "reply_parameters");
		json_t *mid = json_object_get(rp, "message_id");
		json_t *chat = json_object_get(c->params.obj, "chat_id");
		json_t *parsed = NULL;
		long long chat_id, msg_id;

		if (json_is_string(rp)) {	/* urlencoded and multipart carry JSON text */
			parsed = json_loads(json_string_value(rp), 0, NULL);
			mid = json_object_get(parsed, "message_id");
		}
		if (mid == NULL)
			mid = json_object_get(c->params.obj, "reply_to_message_id");
		if (int_of(chat, &chat_id) && int_of(mid, &msg_id))
			idx = stream_find_message(app->stream, chat_id, msg_id);
		json_decref(parsed);
	}
	if (idx < 0 && strcmp(c->method, "answerInlineQuery") == 0) {
		char tmp[32];
		const char *iid = params_str(&c->params, "inline_query_id", tmp, sizeof(tmp));

		if (iid != NULL)
			idx = stream_find_inline(app->stream, iid);
	}
	if (idx >= 0)
		stats_echo(app->stats, app->stream, (size_t)idx, c->mid, c->t_ms);
}

static void
ok_result(struct call *c, json_t *result, const char *description)
{
	struct evbuffer *out = c->app->out;

	evbuffer_add(out, "{\"ok\":true,\"result\":", 20);
	util_json_to_evbuffer(out, result);
	if (description != NULL)
		evbuffer_add_printf(out, ",\"description\":\"%s\"", description);
	evbuffer_add(out, "}", 1);
	json_decref(result);
	server_call_reply(c, 200, NULL);
}

static void
get_file(struct call *c)
{
	char tmp[32];
	const char *id = params_str(&c->params, "file_id", tmp, sizeof(tmp));
	struct files_entry *e = id ? files_find_id(c->app->files, id) : NULL;

	if (e == NULL) {
		server_call_error(c, 400, "Bad Request: invalid file_id");
		return;
	}
	ok_result(c, json_pack("{s:s,s:s,s:I,s:s}", "file_id", e->file_id,
	    "file_unique_id", e->unique_id, "file_size", (json_int_t)e->size,
	    "file_path", e->path), NULL);
}

static int
flag(const struct call *c, const char *key)
{
	json_t *v = json_object_get(c->params.obj, key);

	return json_is_true(v) || (json_is_string(v) &&
	    (strcmp(json_string_value(v), "true") == 0 ||
	    strcmp(json_string_value(v), "1") == 0));
}

static void
webhook(struct call *c)
{
	struct app *app = c->app;
	const char *url = json_string_value(json_object_get(c->params.obj, "url"));
	int had = poll_webhook(app) != NULL;

	if (flag(c, "drop_pending_updates"))
		poll_drop_pending(app);
	if (strcmp(c->method, "deleteWebhook") == 0 || url == NULL || *url == '\0') {
		poll_set_webhook(app, NULL);
		ok_result(c, json_true(), had ? "Webhook was deleted" :
		    "Webhook is already deleted");
		return;
	}
	poll_set_webhook(app, url);
	ok_result(c, json_true(), "Webhook was set");
}

static void
webhook_info(struct call *c)
{
	struct app *app = c->app;
	const char *url = poll_webhook(app);

	ok_result(c, json_pack("{s:s,s:b,s:I}", "url", url ? url : "",
	    "has_custom_certificate", 0, "pending_update_count",
	    (json_int_t)(stream_released(app->stream) - stream_head(app->stream))), NULL);
}

void
methods_call(struct call *c)
{
	const char *m = c->method;
	json_t *result = NULL;
	char err[160];
	int code;

	methods_record(c);
	detect_echo(c);
	if (strcmp(m, "getMe") == 0)
		ok_result(c, message_bot_user(), NULL);
	else if (strcmp(m, "getFile") == 0)
		get_file(c);
	else if (strcmp(m, "setWebhook") == 0 || strcmp(m, "deleteWebhook") == 0)
		webhook(c);
	else if (strcmp(m, "getWebhookInfo") == 0)
		webhook_info(c);
	else if (strcmp(m, "sendMessage") == 0 &&
	    message_fast_send(c->app, &c->params, c->app->out))
		server_call_reply(c, 200, NULL);
	else if (message_handles(m)) {
		code = message_build(c->app, m, &c->params, &result, err, sizeof(err));
		if (code == 200)
			ok_result(c, result, NULL);
		else
			server_call_error(c, code, err);
	} else
		ok_result(c, json_true(), NULL);
}
