/* getUpdates long polling on curl multi, with the Bot API's error policy. */
#include "poller.h"
#include "backoff.h"
#include "botapi.h"
#include "clock.h"
#include "config.h"
#include "evcurl.h"
#include "jscan.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

enum poll_state { P_IDLE, P_REQUEST, P_WAIT, P_CONFIRM };

struct poller {
	struct event_base *base;
	struct evcurl *ec;
	const struct config *cfg;
	struct botapi_net net;
	struct poller_cbs cbs;
	struct botapi_req req;
	struct event *retry_ev;
	enum poll_state state;
	int64_t offset;
	int limit;
	int64_t sent_ms;	/* when the getUpdates in flight was sent */
	int64_t hold_until_ms;	/* [poll] coalesce: the next getUpdates waits until then */
	int limit_cap;		/* answers were too large: ask for fewer; 0 = none */
	struct backoff bo;
	int conflict_logged;
	int deleting;		/* the request in flight is deleteWebhook */
	int dropped;		/* may_send() refused the request in flight */
	json_t *allowed;	/* parsed allowed_updates, or NULL */
	struct poller_item *items;	/* the batch being split */
	size_t nitems, capitems;
};


static void send_request(struct poller *p, int64_t offset, int limit, long timeout_s);

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct poller *p = arg;

	p->state = P_IDLE;
	if (p->cbs.on_ready != NULL)
		p->cbs.on_ready(p->cbs.arg);
	else
		send_request(p, p->offset, p->limit, (long)(p->cfg->poll_timeout_ms / 1000));
}

static void wait_then_retry(struct poller *p, int64_t ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	p->state = P_WAIT;
	evtimer_add(p->retry_ev, &tv);
}

/*
 * `err`: 0, or the JSCAN_E* code of an element jansson refuses (see
 * jscan_item_fn); such an element is still handed on as before.
 */
static int collect(void *arg, const char *json, size_t len, int err)
{
	struct poller *p = arg;

	if (p->nitems == p->capitems) {
		size_t cap = p->capitems ? p->capitems * 2 : 128;
		struct poller_item *n = realloc(p->items, cap * sizeof(*n));

		if (n == NULL)
			return -1;
		p->items = n;
		p->capitems = cap;
	}
	p->items[p->nitems].json = json;
	p->items[p->nitems].len = len;
	p->items[p->nitems].err = err;
	p->nitems++;
	return 0;
}

/*
 * The common case: HTTP 200 with {"ok":true,"result":[...]} and at least one
 * update. Returns 1 when handled; 0 sends the answer down the general path
 * (errors, empty results, anything unusual).
 */
static void batch_seen(struct poller *p, size_t n)
{
	int64_t now = clock_ms();

	/*
	 * Updates were already waiting (the answer came within the coalescing
	 * window) and fewer than asked for: traffic is steady, not a backlog.
	 * Asking again at once would fetch one or two at a time; the next
	 * getUpdates waits until the window since this one's start is over.
	 */
	p->hold_until_ms = 0;
	if (n > 0 && n < (size_t)p->limit && now - p->sent_ms < p->cfg->poll_coalesce_ms)
		p->hold_until_ms = p->sent_ms + p->cfg->poll_coalesce_ms;
}

static int fast_batch(struct poller *p, CURLcode res)
{
	long code = 0;
	int ok = 0;

	if (res != CURLE_OK || p->req.resp.len == 0)
		return 0;
	curl_easy_getinfo(p->req.easy, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200)
		return 0;
	p->nitems = 0;
	if (jscan_result_array(p->req.resp.data, p->req.resp.len, &ok, collect, p) != 0 ||
	    !ok || p->nitems == 0)
		return 0;
	backoff_reset(&p->bo);
	p->conflict_logged = 0;
	if (p->nitems < (size_t)p->limit)
		p->limit_cap = 0;	/* the backlog is through */
	p->state = P_IDLE;
	batch_seen(p, p->nitems);
	p->cbs.on_batch(p->cbs.arg, p->items, p->nitems);
	return 1;
}

/* The first "update_id" in a cut answer, or -1 when there is none. */
static int first_update_id(const char *data, size_t len, int64_t *id)
{
	const char *k = memmem(data, len, "\"update_id\"", 11), *end = data + len;
	char *after;
	long long v;

	if (k == NULL)
		return -1;
	for (k += 11; k < end && (*k == ' ' || *k == ':' || *k == '\n' || *k == '\t' ||
	    *k == '\r'); k++)
		;
	if (k >= end || !(*k == '-' || (*k >= '0' && *k <= '9')))
		return -1;
	errno = 0;
	v = strtoll(k, &after, 10);	/* data is NUL-terminated */
	if (errno != 0 || after == k)
		return -1;
	*id = v;
	return 0;
}

/*
 * The answer was cut at 64 MiB: ask for half as many updates; when even one
 * is too large, skip it. Returns 1 when handled.
 */
static int too_large(struct poller *p, CURLcode res)
{
	int64_t id;

	if (res != CURLE_WRITE_ERROR || !p->req.resp.overflow)
		return 0;
	p->state = P_IDLE;
	if (p->limit > 1) {
		p->limit_cap = p->limit / 2;
		log_warn("getUpdates: the answer is over 64 MiB; asking for %d updates "
		    "at a time", p->limit_cap);
		p->limit = p->limit_cap;
		wait_then_retry(p, 0);
		return 1;
	}
	if (first_update_id(p->req.resp.data, p->req.resp.len, &id) != 0) {
		log_err("getUpdates: one update is over 64 MiB and has no readable "
		    "update_id; retrying");
		wait_then_retry(p, backoff_next(&p->bo));
		return 1;
	}
	log_err("update %lld: over 64 MiB, more than a getUpdates answer may be; "
	    "skipped (its content is lost)", (long long)id);
	p->cbs.on_skip(p->cbs.arg, id);
	return 1;
}

/* libcurl: the request is about to be written. */
static int on_prereq(void *clientp, char *remote_ip, char *local_ip, int remote_port,
    int local_port)
{
	struct poller *p = clientp;

	if (p->cbs.may_send == NULL || p->cbs.may_send(p->cbs.arg))
		return CURL_PREREQFUNC_OK;
	p->dropped = 1;
	return CURL_PREREQFUNC_ABORT;
}

static void on_done(CURL *easy, CURLcode res, void *arg)
{
	struct poller *p = arg;
	struct botapi_result r;
	int confirm = p->state == P_CONFIRM;
	int64_t wait;

	if (p->dropped) {
		p->dropped = 0;
		p->deleting = 0;
		p->state = P_IDLE;
		log_info("getUpdates: not sent: polling stopped before it went out");
		if (confirm)
			p->cbs.on_confirmed(p->cbs.arg, 0);
		return;
	}
	if (!confirm && !p->deleting && (fast_batch(p, res) || too_large(p, res)))
		return;

	if (botapi_decode(&p->req, res, &r) == 0 && r.ok) {
		backoff_reset(&p->bo);
		p->conflict_logged = 0;
		p->state = P_IDLE;
		if (confirm) {
			botapi_result_clear(&r);
			p->cbs.on_confirmed(p->cbs.arg, 1);
			return;
		}
		if (p->deleting) {
			p->deleting = 0;
			botapi_result_clear(&r);
			log_notice("deleteWebhook: webhook removed; polling");
			send_request(p, p->offset, p->limit,
			    (long)(p->cfg->poll_timeout_ms / 1000));
			return;
		}
		if (!json_is_array(r.result)) {
			log_warn("getUpdates: result is not an array; retrying");
			botapi_result_clear(&r);
			wait_then_retry(p, backoff_next(&p->bo));
			return;
		}
		/* An empty batch (a long poll that timed out), or one the fast path refused. */
		if (json_array_size(r.result) > 0) {
			size_t i;
			json_t *e;
			char **texts = calloc(json_array_size(r.result), sizeof(*texts));

			p->nitems = 0;
			json_array_foreach(r.result, i, e) {
				if (texts == NULL || (texts[i] = json_dumps(e, JSON_COMPACT |
				    JSON_ENCODE_ANY)) == NULL || collect(p, texts[i],
				    strlen(texts[i]), 0) != 0)
					fatalx("out of memory");
			}
			batch_seen(p, p->nitems);
			p->cbs.on_batch(p->cbs.arg, p->items, p->nitems);
			for (i = 0; i < json_array_size(r.result); i++)
				free(texts[i]);
			free(texts);
		} else {
			p->cbs.on_batch(p->cbs.arg, NULL, 0);
		}
		botapi_result_clear(&r);
		return;
	}
	p->deleting = 0;
	if (confirm) {
		log_warn("getUpdates (confirming offset %lld): %s",
		    (long long)p->offset, r.description);
		botapi_result_clear(&r);
		p->state = P_IDLE;
		p->cbs.on_confirmed(p->cbs.arg, 0);
		return;
	}
	if (r.error_code == 401 || r.error_code == 404) {
		p->state = P_IDLE;
		p->cbs.on_rejected(p->cbs.arg, r.error_code, r.description);
		botapi_result_clear(&r);
		return;
	}
	if (r.error_code == 429) {
		wait = (int64_t)(r.retry_after > 0 ? r.retry_after : 1) * 1000;
		log_warn("getUpdates: 429 Too Many Requests; waiting %lld s as told",
		    (long long)(wait / 1000));
	} else if (r.error_code == 409) {
		wait = backoff_next(&p->bo);
		if (!p->conflict_logged)
			log_err("getUpdates: 409 %s; another poller or a webhook is "
			    "active%s; retrying with backoff", r.description,
			    p->cfg->delete_webhook ? "" :
			    " (set [poll] delete_webhook = yes to remove a webhook)");
		else
			log_info("getUpdates: 409 again; next try in %lld ms", (long long)wait);
		p->conflict_logged = 1;
		if (p->cbs.on_conflict != NULL)
			p->cbs.on_conflict(p->cbs.arg);
		if (p->cfg->delete_webhook && strstr(r.description, "webhook")) {
			botapi_result_clear(&r);
			p->state = P_IDLE;
			log_notice("calling deleteWebhook ([poll] delete_webhook = yes)");
			send_request(p, -1, 0, 0);
			return;
		}
	} else if (botapi_tls_trust_error(res)) {
		wait = backoff_next(&p->bo);
		log_err("getUpdates: %s: the server's certificate is not trusted; "
		    "set [api] ca_file or ca_path to the CA that signed it; retrying "
		    "in %lld ms", r.description, (long long)wait);
	} else {
		wait = backoff_next(&p->bo);
		if (r.error_code != 0)
			log_warn("getUpdates: %d %s; retrying in %lld ms", r.error_code,
			    r.description, (long long)wait);
		else
			log_warn("getUpdates: %s; retrying in %lld ms", r.description,
			    (long long)wait);
	}
	botapi_result_clear(&r);
	wait_then_retry(p, wait);
}

/* offset -1 with limit 0 means: call deleteWebhook instead. */
static void send_request(struct poller *p, int64_t offset, int limit, long timeout_s)
{
	json_t *body;
	const char *method = "getUpdates";
	long total_ms;

	if (offset == -1 && limit == 0) {
		method = "deleteWebhook";
		p->deleting = 1;
		body = json_object();
		timeout_s = 0;
	} else {
		body = json_pack("{s:I, s:i, s:i}", "offset", (json_int_t)offset,
		    "limit", limit, "timeout", (int)timeout_s);
		if (body != NULL && p->allowed != NULL)
			json_object_set(body, "allowed_updates", p->allowed);
	}
	/* The transfer may take the long-poll time plus a margin for the network. */
	total_ms = timeout_s * 1000 + 15000;
	if (body == NULL || botapi_req_prepare(&p->req, &p->net, BOTAPI_POLL,
	    method, body, total_ms) != 0) {
		json_decref(body);
		log_err("getUpdates: cannot build the request; retrying");
		wait_then_retry(p, 1000);
		return;
	}
	json_decref(body);
	if (p->state != P_CONFIRM)
		p->state = P_REQUEST;
	p->dropped = 0;
	p->sent_ms = clock_ms();
	if (evcurl_add(p->ec, p->req.easy, on_done, p) != 0) {
		p->state = P_IDLE;
		wait_then_retry(p, 1000);
	}
}

struct poller *poller_new(struct event_base *base, struct evcurl *ec,
    const struct config *cfg, const char *token, const struct poller_cbs *cbs)
{
	struct poller *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->base = base;
	p->ec = ec;
	p->cbs = *cbs;
	p->net.token = token;
	poller_set_config(p, cfg);
	backoff_init(&p->bo, 500, 30000, (uint64_t)clock_ms());
	p->retry_ev = evtimer_new(base, on_retry, p);
	if (p->retry_ev == NULL || botapi_req_init(&p->req) != 0) {
		poller_free(p);
		return NULL;
	}
	/* botapi_req_prepare() never resets the handle: set once, asked before every request. */
	curl_easy_setopt(p->req.easy, CURLOPT_PREREQFUNCTION, on_prereq);
	curl_easy_setopt(p->req.easy, CURLOPT_PREREQDATA, p);
	return p;
}

void poller_free(struct poller *p)
{
	if (p == NULL)
		return;
	if (p->req.easy != NULL)
		evcurl_remove(p->ec, p->req.easy);
	botapi_req_free(&p->req);
	if (p->retry_ev != NULL)
		event_free(p->retry_ev);
	json_decref(p->allowed);
	free(p->items);
	free(p);
}

void poller_poll(struct poller *p, int64_t offset, int limit)
{
	if (p->state != P_IDLE)
		return;
	p->offset = offset;
	p->limit = p->limit_cap > 0 && limit > p->limit_cap ? p->limit_cap : limit;
	if (p->hold_until_ms > 0) {
		int64_t wait = p->hold_until_ms - clock_ms();

		p->hold_until_ms = 0;
		if (wait > 0) {
			wait_then_retry(p, wait);
			return;
		}
	}
	send_request(p, offset, p->limit, (long)(p->cfg->poll_timeout_ms / 1000));
}

int poller_busy(const struct poller *p)
{
	return p->state != P_IDLE;
}

void poller_stop(struct poller *p)
{
	evcurl_remove(p->ec, p->req.easy);
	evtimer_del(p->retry_ev);
	p->state = P_IDLE;
	p->deleting = 0;
}

void poller_confirm(struct poller *p, int64_t offset)
{
	poller_stop(p);
	p->state = P_CONFIRM;
	p->offset = offset;
	send_request(p, offset, 1, 0);
}

void poller_set_config(struct poller *p, const struct config *cfg)
{
	p->cfg = cfg;
	p->net.api_url = cfg->api_url;
	p->net.http = (enum botapi_http)cfg->api_http_version;
	p->net.ca_file = cfg->api_ca_file;
	p->net.ca_path = cfg->api_ca_path;
	p->net.proxy = cfg->api_proxy;
	json_decref(p->allowed);
	p->allowed = cfg->allowed_updates ? json_loads(cfg->allowed_updates, 0, NULL) : NULL;
}
