/* The handler API (tgrun.h): Bot API calls with retries, accessors, sleep, logging. */
#include "tgrun.h"
#include "worker.h"
#include "backoff.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void set_err(struct tgrun_error *err, enum tgrun_error_kind kind,
    int code, int retry_after, const char *desc)
{
	if (err == NULL)
		return;
	err->kind = kind;
	err->error_code = code;
	err->retry_after = retry_after;
	snprintf(err->description, sizeof(err->description), "%s", desc);
}

static int sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

json_t *tgrun_call(struct tgrun_ctx *ctx, const char *method, json_t *params,
    struct tgrun_error *err)
{
	struct tgrun_bot *bot;
	struct botapi_result res;
	struct backoff bo;
	json_t *result = NULL;
	int attempt;

	set_err(err, TGRUN_ERR_NONE, 0, 0, "");
	if (ctx == NULL || method == NULL || *method == '\0') {
		json_decref(params);
		set_err(err, TGRUN_ERR_INVALID, 0, 0, "tgrun_call: no context or method");
		return NULL;
	}
	bot = ctx->bot;
	if (params == NULL)
		params = json_object();
	backoff_init(&bo, 200, 5000, (uint64_t)ctx->update_id * 2654435761u + 1);
	for (attempt = 0;; attempt++) {
		CURLcode cc;
		int decoded;
		long wait_ms;

		if (ctx->cancelled) {
			set_err(err, TGRUN_ERR_CANCELLED, 0, 0, "update cancelled");
			break;
		}
		if (botapi_req_prepare(&bot->api, bot->set.api_url, bot->set.token,
		    method, params, bot->set.api_timeout_ms) != 0) {
			set_err(err, TGRUN_ERR_INVALID, 0, 0, "cannot encode the request");
			break;
		}
		cc = curl_easy_perform(bot->api.easy);
		decoded = botapi_decode(&bot->api, cc, &res);
		if (decoded == 0 && res.ok) {
			result = res.result;
			res.result = NULL;
			botapi_result_clear(&res);
			break;
		}
		if (decoded == 0 && res.error_code == 429) {
			wait_ms = (long)res.retry_after * 1000;
			if (wait_ms > bot->set.retry_after_max_ms ||
			    attempt >= bot->set.api_retries) {
				set_err(err, TGRUN_ERR_API, 429, res.retry_after, res.description);
				botapi_result_clear(&res);
				break;
			}
			log_info("%s: 429, retrying after %d s", method, res.retry_after);
		} else if (decoded == 0 && res.error_code < 500) {
			set_err(err, TGRUN_ERR_API, res.error_code, 0, res.description);
			botapi_result_clear(&res);
			break;
		} else {
			/* 5xx or no Bot API answer at all: retry with backoff. */
			if (attempt >= bot->set.api_retries) {
				if (decoded == 0)
					set_err(err, TGRUN_ERR_API, res.error_code, 0, res.description);
				else if (cc == CURLE_OPERATION_TIMEDOUT)
					set_err(err, TGRUN_ERR_TIMEOUT, 0, 0, res.description);
				else
					set_err(err, TGRUN_ERR_NETWORK, (int)res.http_status, 0,
					    res.description);
				botapi_result_clear(&res);
				break;
			}
			wait_ms = (long)backoff_next(&bo);
			log_info("%s: %s, retry %d in %ld ms", method, res.description,
			    attempt + 1, wait_ms);
		}
		botapi_result_clear(&res);
		sleep_ms(wait_ms);
	}
	json_decref(params);
	return result;
}

json_t *tgrun_send_text(struct tgrun_ctx *ctx, int64_t chat_id,
    const char *text, struct tgrun_error *err)
{
	json_t *p = json_pack("{s:I, s:s}", "chat_id", (json_int_t)chat_id,
	    "text", text ? text : "");

	if (p == NULL) {
		set_err(err, TGRUN_ERR_INVALID, 0, 0, "text is not valid UTF-8");
		return NULL;
	}
	return tgrun_call(ctx, "sendMessage", p, err);
}

static int64_t chat_of(const json_t *update)
{
	static const char *const carriers[] = {
		"message", "edited_message", "channel_post", "edited_channel_post",
		"business_message", "edited_business_message", "my_chat_member",
		"chat_member", "chat_join_request", "message_reaction",
	};
	const json_t *o, *id;

	for (size_t i = 0; i < sizeof(carriers) / sizeof(carriers[0]); i++) {
		o = json_object_get(update, carriers[i]);
		if (o != NULL) {
			id = json_object_get(json_object_get(o, "chat"), "id");
			return json_is_integer(id) ? json_integer_value(id) : 0;
		}
	}
	o = json_object_get(json_object_get(update, "callback_query"), "message");
	id = json_object_get(json_object_get(o, "chat"), "id");
	return json_is_integer(id) ? json_integer_value(id) : 0;
}

static int64_t user_of(const json_t *update)
{
	const char *key;
	json_t *v, *u;

	json_object_foreach((json_t *)update, key, v) {
		if (!json_is_object(v))
			continue;
		u = json_object_get(v, "from");
		if (u == NULL)
			u = json_object_get(v, "user");
		u = json_object_get(u, "id");
		if (json_is_integer(u))
			return json_integer_value(u);
	}
	return 0;
}

void ctx_describe(struct tgrun_ctx *ctx)
{
	const char *key;
	json_t *v;

	ctx->type = "unknown";
	json_object_foreach(ctx->update, key, v) {
		if (strcmp(key, "update_id") != 0 && json_is_object(v)) {
			ctx->type = key;
			break;
		}
	}
	ctx->chat_id = chat_of(ctx->update);
	ctx->user_id = user_of(ctx->update);
}

json_t *tgrun_reply(struct tgrun_ctx *ctx, const json_t *update,
    const char *text, struct tgrun_error *err)
{
	int64_t chat = chat_of(update);

	if (chat == 0) {
		set_err(err, TGRUN_ERR_INVALID, 0, 0, "the update has no chat");
		return NULL;
	}
	return tgrun_send_text(ctx, chat, text, err);
}

const json_t *tgrun_update(struct tgrun_ctx *ctx) { return ctx->update; }
int64_t tgrun_update_id(struct tgrun_ctx *ctx) { return ctx->update_id; }
int tgrun_attempt(struct tgrun_ctx *ctx) { return ctx->attempt; }
const char *tgrun_update_type(struct tgrun_ctx *ctx) { return ctx->type; }
int64_t tgrun_chat_id(struct tgrun_ctx *ctx) { return ctx->chat_id; }
int64_t tgrun_user_id(struct tgrun_ctx *ctx) { return ctx->user_id; }
struct tgrun_bot *tgrun_bot(struct tgrun_ctx *ctx) { return ctx->bot; }
int tgrun_cancelled(struct tgrun_ctx *ctx) { return ctx->cancelled; }

int tgrun_sleep(struct tgrun_ctx *ctx, double seconds)
{
	if (ctx->cancelled) {
		errno = ECANCELED;
		return -1;
	}
	if (seconds > 0)
		sleep_ms((long)(seconds * 1000.0));
	return 0;
}

const char *tgrun_config(struct tgrun_bot *bot, const char *key)
{
	return json_string_value(json_object_get(bot->set.handler_kv, key));
}

int tgrun_worker_index(struct tgrun_bot *bot) { return bot->set.slot; }
int tgrun_worker_count(struct tgrun_bot *bot) { return bot->set.count; }

void tgrun_log(struct tgrun_bot *bot, int level, const char *fmt, ...)
{
	va_list ap;

	if (level < LOG_LVL_ERR)
		level = LOG_LVL_ERR;
	if (level > LOG_LVL_DEBUG)
		level = LOG_LVL_DEBUG;
	va_start(ap, fmt);
	log_vmsg((enum log_level)level, fmt, ap);
	va_end(ap);
}

int settings_from_json(struct worker_settings *s, const json_t *j,
    char *err, size_t errlen)
{
	json_error_t je;
	const char *hp = NULL, *url = NULL, *tok = NULL;
	json_int_t to = 30000, ram = 30000;
	json_t *kv = NULL;

	memset(s, 0, sizeof(*s));
	if (json_unpack_ex((json_t *)j, &je, 0,
	    "{s:i, s:i, s:i, s:s, s:s, s:s, s:I, s:i, s:I, s:o}",
	    "slot", &s->slot, "count", &s->count, "generation", &s->generation,
	    "handler", &hp, "api_url", &url, "token", &tok,
	    "api_timeout_ms", &to, "api_retries", &s->api_retries,
	    "retry_after_max_ms", &ram, "handler_kv", &kv) != 0) {
		snprintf(err, errlen, "bad CONFIG frame: %s", je.text);
		return -1;
	}
	s->handler_path = strdup(hp);
	s->api_url = strdup(url);
	s->token = strdup(tok);
	s->api_timeout_ms = (long)to;
	s->retry_after_max_ms = (long)ram;
	s->handler_kv = json_incref(kv);
	if (!s->handler_path || !s->api_url || !s->token) {
		settings_free(s);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

void settings_free(struct worker_settings *s)
{
	free(s->handler_path);
	free(s->api_url);
	if (s->token != NULL)
		explicit_bzero(s->token, strlen(s->token));
	free(s->token);
	json_decref(s->handler_kv);
	memset(s, 0, sizeof(*s));
}
