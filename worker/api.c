/* The handler API's Bot API side: calls with retries through the transfer core, accessors, settings. */
#include "tgrun.h"
#include "clock.h"
#include "worker.h"
#include "backoff.h"
#include "evcurl.h"
#include "keys.h"
#include "log.h"
#include "sched.h"
#include "throttle.h"
#include "wstats.h"
#include "xfer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One attempt's answer, decoded on the scheduler's stack when its transfer ends. */
struct attempt {
	struct botapi_req *r;
	struct botapi_result res;
	int decoded;		/* botapi_decode(): 0 Bot API answer, -1 not */
};

/* The state of one call's retries. */
struct api_retry {
	struct backoff bo;
	int attempt;		/* attempts made, less one */
	int maybe_delivered;	/* an earlier attempt may have run */
};

void api_set_err(struct tgrun_error *err, enum tgrun_error_kind kind,
    int code, int retry_after, const char *desc)
{
	/* A cancellation says nothing about why an update failed. */
	if (kind != TGRUN_ERR_NONE && kind != TGRUN_ERR_CANCELLED)
		ctx_note_call_error(desc);
	if (err == NULL)
		return;
	err->maybe_delivered = 0;
	err->kind = kind;
	err->error_code = code;
	err->retry_after = retry_after;
	snprintf(err->description, sizeof(err->description), "%s", desc);
}

static struct botapi_req *req_get(struct worker *w)
{
	struct botapi_req *r;

	if (w->nreq_free > 0)
		return w->req_free[--w->nreq_free];
	r = calloc(1, sizeof(*r));
	if (r != NULL && botapi_req_init(r) != 0) {
		free(r);
		return NULL;
	}
	return r;
}

static void req_put(struct worker *w, struct botapi_req *r)
{
	if (w->nreq_free < (int)(sizeof(w->req_free) / sizeof(w->req_free[0]))) {
		w->req_free[w->nreq_free++] = r;
		return;
	}
	botapi_req_free(r);
	free(r);
}

void api_free_requests(struct worker *w)
{
	while (w->nreq_free > 0) {
		struct botapi_req *r = w->req_free[--w->nreq_free];

		botapi_req_free(r);
		free(r);
	}
}

/* The chat of a throttled call: chat_id as an integer (or digits), 0 for "@name". */
static int64_t throttle_chat(const json_t *params)
{
	const json_t *v = json_object_get(params, "chat_id");
	const char *s;
	char *end;
	long long n;

	if (json_is_integer(v))
		return json_integer_value(v);
	if (!json_is_string(v))
		return 0;
	s = json_string_value(v);
	errno = 0;
	n = strtoll(s, &end, 10);
	return *s != '\0' && *end == '\0' && errno == 0 ? n : 0;
}

/*
 * Before each attempt of a Bot API call: under [throttle], wait (yielding)
 * until `method` to the chat in `params` may go. 0, or ECANCELED.
 */
static int api_throttle(struct worker *w, const char *method, const json_t *params)
{
	int64_t chat, wait_us;
	int r;

	if (w->throttle == NULL || !throttle_method_counts(method))
		return 0;
	chat = throttle_chat(params);
	/* Yield between tries: other fibers and this worker's loop keep running. */
	while ((r = throttle_acquire(w->throttle, chat, clock_us(), &wait_us)) == 1)
		if (sched_park("throttle", NULL, NULL, (wait_us + 999) / 1000) == ECANCELED)
			return ECANCELED;
	if (r < 0)
		log_err("throttle: the shared lock failed (%s); %s sent unthrottled",
		    strerror(errno), method);
	return 0;
}

/* On the scheduler's stack: the answer is decoded here, not on the fiber. */
static void attempt_decode(CURL *easy, CURLcode cc, void *arg)
{
	struct attempt *a = arg;

	a->decoded = botapi_decode(a->r, cc, &a->res);
}

/* Metrics: the outcome of one attempt that ran to an answer or an error. */
static void count_attempt(struct worker *w, const char *method, const struct attempt *a,
    CURLcode cc)
{
	wstats_api(w->stats, method, a->decoded == 0 ? (a->res.ok ? WS_OK : WS_API_ERROR) :
	    cc == CURLE_OPERATION_TIMEDOUT ? WS_TIMEOUT : WS_NETWORK_ERROR,
	    a->decoded == 0 && !a->res.ok && a->res.error_code == 429);
}

static void api_retry_init(struct api_retry *rs, const void *seed)
{
	memset(rs, 0, sizeof(*rs));
	backoff_init(&rs->bo, 200, 5000, (uint64_t)(uintptr_t)seed ^ (uint64_t)clock_ms());
}

/* The call ends with the last attempt's error; `maybe` says whether it may have run. */
static void retry_fail(struct api_retry *rs, const char *method, int decoded,
    const struct botapi_result *res, CURLcode cc, int maybe, struct tgrun_error *err)
{
	if (decoded == 0)
		api_set_err(err, TGRUN_ERR_API, res->error_code, res->retry_after,
		    res->description);
	else if (cc == CURLE_OPERATION_TIMEDOUT)
		api_set_err(err, TGRUN_ERR_TIMEOUT, 0, 0, res->description);
	else
		api_set_err(err, TGRUN_ERR_NETWORK, (int)res->http_status, 0,
		    res->description);
	if (err != NULL)
		err->maybe_delivered = maybe || rs->maybe_delivered;
}

/*
 * The retry policy tgrun.h states for tgrun_call and tgrun_upload, given one
 * attempt's outcome on `easy` (decoded: botapi_decode's return): the
 * milliseconds to wait before the next attempt, or -1 when the call ends
 * here with `err` filled.
 */
static int64_t api_retry_policy(struct worker *w, const char *method, struct api_retry *rs,
    CURL *easy, int decoded, const struct botapi_result *res, CURLcode cc,
    struct tgrun_error *err)
{
	int attempt = rs->attempt++;
	int64_t wait_ms;
	int maybe;

	if (decoded == 0 && res->error_code == 429) {
		wait_ms = (int64_t)res->retry_after * 1000;
		if (wait_ms > w->bot.set.retry_after_max_ms ||
		    attempt >= w->bot.set.api_retries) {
			retry_fail(rs, method, decoded, res, cc, 0, err);
			return -1;
		}
		log_info("%s: 429, retrying after %d s", method, res->retry_after);
		return wait_ms;
	}
	if (decoded == 0 && res->error_code < 500) {
		retry_fail(rs, method, decoded, res, cc, 0, err);
		return -1;
	}
	if (botapi_tls_trust_error(cc)) {
		/* No retry can make an untrusted certificate trusted. */
		retry_fail(rs, method, decoded, res, cc, 0, err);
		log_err("%s: %s: the server's certificate is not trusted; set [api] "
		    "ca_file or ca_path to the CA that signed it", method, res->description);
		return -1;
	}
	/* 5xx or no Bot API answer at all. */
	maybe = !botapi_not_delivered(easy, cc, decoded, res);
	if (maybe && !botapi_method_readonly(method) && !w->bot.set.retry_ambiguous) {
		retry_fail(rs, method, decoded, res, cc, 1, err);
		ctx_note_ambiguous();
		log_warn("%s: %s; not retried: the request may have reached the Bot API "
		    "([api] retry_ambiguous = yes retries it)", method, res->description);
		return -1;
	}
	rs->maybe_delivered |= maybe;
	if (attempt >= w->bot.set.api_retries) {
		retry_fail(rs, method, decoded, res, cc, maybe, err);
		return -1;
	}
	wait_ms = backoff_next(&rs->bo);
	log_info("%s: %s; retry %d in %lld ms", method, res->description, attempt + 1,
	    (long long)wait_ms);
	return wait_ms;
}

json_t *api_send(struct tgrun_ctx *ctx, const char *method, const json_t *params,
    struct botapi_req *r, struct tgrun_error *err)
{
	struct worker *w = ctx->bot->w;
	struct attempt a = { .r = r };
	struct api_retry rs;
	json_t *result = NULL;
	CURLcode cc;

	api_retry_init(&rs, ctx);
	for (;;) {
		int64_t wait_ms;

		a.decoded = -1;
		r->resp.len = 0;
		r->errbuf[0] = '\0';
		if (tgrun_cancelled(ctx) || api_throttle(w, method, params) == ECANCELED ||
		    xfer_run(ctx, r->easy, method, attempt_decode, &a, &cc) != 0) {
			wstats_api(w->stats, method, WS_CANCELLED, 0);
			api_set_err(err, TGRUN_ERR_CANCELLED, 0, 0, "cancelled");
			break;
		}
		count_attempt(w, method, &a, cc);
		if (a.decoded == 0 && a.res.ok) {
			result = a.res.result;
			a.res.result = NULL;
			break;
		}
		wait_ms = api_retry_policy(w, method, &rs, r->easy, a.decoded, &a.res, cc, err);
		if (wait_ms < 0)
			break;
		botapi_result_clear(&a.res);
		if (sched_park("retry wait", NULL, NULL, wait_ms) == ECANCELED) {
			api_set_err(err, TGRUN_ERR_CANCELLED, 0, 0, "cancelled");
			break;
		}
	}
	botapi_result_clear(&a.res);
	return result;
}

json_t *tgrun_call(struct tgrun_ctx *ctx, const char *method, json_t *params,
    struct tgrun_error *err)
{
	struct worker *w;
	struct botapi_req *r;
	json_t *result = NULL;

	api_set_err(err, TGRUN_ERR_NONE, 0, 0, "");
	if (ctx == NULL || method == NULL || *method == '\0' || !ctx_in_fiber(ctx)) {
		json_decref(params);
		api_set_err(err, TGRUN_ERR_INVALID, 0, 0, ctx && method && *method ?
		    "tgrun_call: called outside a fiber" : "tgrun_call: no context or method");
		return NULL;
	}
	w = ctx->bot->w;
	if (params == NULL)
		params = json_object();
	r = req_get(w);
	if (r == NULL) {
		json_decref(params);
		api_set_err(err, TGRUN_ERR_INVALID, 0, 0, "out of memory");
		return NULL;
	}
	/* Once: every attempt sends the same request. */
	if (botapi_req_prepare(r, &w->bot.set.net, BOTAPI_CALL, method, params,
	    w->bot.set.api_timeout_ms) != 0)
		api_set_err(err, TGRUN_ERR_INVALID, 0, 0, "cannot encode the request");
	else
		result = api_send(ctx, method, params, r, err);
	req_put(w, r);
	json_decref(params);
	return result;
}

json_t *tgrun_send_text(struct tgrun_ctx *ctx, int64_t chat_id,
    const char *text, struct tgrun_error *err)
{
	json_t *p = json_pack("{s:I, s:s}", "chat_id", (json_int_t)chat_id,
	    "text", text ? text : "");

	if (p == NULL) {
		api_set_err(err, TGRUN_ERR_INVALID, 0, 0, "text is not valid UTF-8");
		return NULL;
	}
	return tgrun_call(ctx, "sendMessage", p, err);
}

/*
 * The type, chat and user by the table the master orders with
 * (common/keys.h), so a handler sees the keys its update was ordered by.
 */
void wupdate_describe(struct wupdate *u)
{
	struct update_keys k;

	u->type = "unknown";
	u->chat_id = u->user_id = 0;
	if (keys_extract(u->update, &k) != 0 || k.name[0] == '\0')
		return;
	/* Known names are static; an unknown one lives as a key of the update. */
	u->type = k.type != UPD_UNKNOWN ? keys_type_name(k.type) :
	    json_object_iter_key(json_object_iter_at(u->update, k.name));
	u->chat_id = k.has_chat ? k.chat_id : 0;
	u->user_id = k.has_user ? k.user_id : 0;
}

json_t *tgrun_reply(struct tgrun_ctx *ctx, const json_t *update,
    const char *text, struct tgrun_error *err)
{
	struct update_keys k;

	if (keys_extract(update, &k) != 0 || !k.has_chat) {
		api_set_err(err, TGRUN_ERR_INVALID, 0, 0, "the update has no chat");
		return NULL;
	}
	return tgrun_send_text(ctx, k.chat_id, text, err);
}

const json_t *tgrun_update(struct tgrun_ctx *ctx) { return ctx->u ? ctx->u->update : NULL; }
int64_t tgrun_update_id(struct tgrun_ctx *ctx) { return ctx->u ? ctx->u->id : 0; }
int tgrun_attempt(struct tgrun_ctx *ctx) { return ctx->u ? ctx->u->attempt : 0; }
const char *tgrun_update_type(struct tgrun_ctx *ctx) { return ctx->u ? ctx->u->type : ""; }
int64_t tgrun_chat_id(struct tgrun_ctx *ctx) { return ctx->u ? ctx->u->chat_id : 0; }
int64_t tgrun_user_id(struct tgrun_ctx *ctx) { return ctx->u ? ctx->u->user_id : 0; }
struct tgrun_bot *tgrun_bot(struct tgrun_ctx *ctx) { return ctx->bot; }

const char *tgrun_config(struct tgrun_bot *bot, const char *key)
{
	return json_string_value(json_object_get(bot->set.handler_kv, key));
}

int tgrun_worker_index(struct tgrun_bot *bot) { return bot->set.slot; }
int tgrun_worker_count(struct tgrun_bot *bot) { return bot->set.count; }
struct event_base *tgrun_event_base(struct tgrun_bot *bot) { return bot->w->base; }

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

/* A string member, or NULL when absent or null. 0, or -1 out of memory. */
static int opt_string(const json_t *j, const char *key, char **out)
{
	const char *v = json_string_value(json_object_get(j, key));

	*out = v != NULL ? strdup(v) : NULL;
	return v != NULL && *out == NULL ? -1 : 0;
}

int settings_from_json(struct worker_settings *s, const json_t *j,
    char *err, size_t errlen)
{
	json_error_t je;
	const char *hp = NULL, *url = NULL, *tok = NULL;
	json_int_t to = 30000, ram = 30000, stack = 262144;
	json_t *kv = NULL;

	memset(s, 0, sizeof(*s));
	if (json_unpack_ex((json_t *)j, &je, 0,
	    "{s:i, s:i, s:i, s:s, s:s, s:s, s:I, s:i, s:I, s:o, s:i, s:I}",
	    "slot", &s->slot, "count", &s->count, "generation", &s->generation,
	    "handler", &hp, "api_url", &url, "token", &tok,
	    "api_timeout_ms", &to, "api_retries", &s->api_retries,
	    "retry_after_max_ms", &ram, "handler_kv", &kv,
	    "worker_concurrency", &s->worker_concurrency,
	    "stack_size", &stack) != 0) {
		snprintf(err, errlen, "bad CONFIG frame: %s", je.text);
		return -1;
	}
	s->handler_path = strdup(hp);
	s->api_url = strdup(url);
	s->token = strdup(tok);
	s->api_timeout_ms = (long)to;
	s->retry_after_max_ms = (long)ram;
	s->stack_size = (long)stack;
	s->handler_kv = json_incref(kv);
	if (s->worker_concurrency < 1)
		s->worker_concurrency = 1;
	s->log_level = json_integer_value(json_object_get(j, "log_level"));
	s->throttle = json_is_true(json_object_get(j, "throttle"));
	s->retry_ambiguous = json_is_true(json_object_get(j, "retry_ambiguous"));
	if (opt_string(j, "ca_file", &s->ca_file) != 0 ||
	    opt_string(j, "ca_path", &s->ca_path) != 0 ||
	    opt_string(j, "proxy", &s->proxy) != 0 ||
	    !s->handler_path || !s->api_url || !s->token) {
		settings_free(s);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->net.api_url = s->api_url;
	s->net.token = s->token;
	s->net.http = (enum botapi_http)json_integer_value(json_object_get(j, "http_version"));
	s->net.ca_file = s->ca_file;
	s->net.ca_path = s->ca_path;
	s->net.proxy = s->proxy;
	return 0;
}

void settings_free(struct worker_settings *s)
{
	free(s->handler_path);
	free(s->api_url);
	if (s->token != NULL)
		explicit_bzero(s->token, strlen(s->token));
	free(s->token);
	free(s->ca_file);
	free(s->ca_path);
	if (s->proxy != NULL)
		explicit_bzero(s->proxy, strlen(s->proxy));
	free(s->proxy);
	json_decref(s->handler_kv);
	memset(s, 0, sizeof(*s));
}
