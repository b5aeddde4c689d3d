/* getUpdates as Telegram does it: offset, limit, long poll, allowed_updates, 409s, webhook. */
#include "poll.h"
#include "stats.h"
#include "stream.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#define LONG_POLL_MAX_S	50
#define RATE_TICK_US	2000
/* getUpdates offsets kept for GET /__fake/script (the first ones of a run). */
#define OFFSETS_MAX	100000
/* getUpdates calls kept for GET /__fake/polls (the first ones since a reset). */
#define POLL_LOG_MAX	1000000

/* One getUpdates call in the poll log: who, when, what it was answered. */
struct poll_rec {
	double t_ms, end_ms;	/* arrival; answer (-1: not yet) */
	long long offset;
	long long first_id, last_id;	/* the updates handed out, if n > 0 */
	int n, status;		/* status 0: not answered yet */
	char via[VIA_MAX + 1];
};

/* A scripted answer: the next getUpdates gets these bytes, whatever they are. */
struct scripted {
	char *body;
	size_t len;
	int status;
	struct scripted *next;
};

struct poll {
	struct app *app;
	struct scripted *script, **script_tail;
	long long *offsets;	/* the offset of each getUpdates call, in order */
	size_t noffsets, capoffsets;
	struct call *pending;	/* the one long poll Telegram allows at a time */
	int pending_limit;
	long long pending_offset;
	uint32_t mask;		/* allowed_updates, kept from the last call that gave it */
	char *webhook;
	struct event *rate_timer;
	struct poll_rec *log;	/* the poll log */
	size_t nlog, caplog;
};

static const char conflict_poll[] = "Conflict: terminated by other getUpdates "
    "request; make sure that only one bot instance is running";
static const char conflict_hook[] = "Conflict: can't use getUpdates method while "
    "webhook is active; use deleteWebhook to delete the webhook first";

static void
rate_tick(evutil_socket_t fd, short what, void *arg)
{
	struct app *app = arg;

	if (stream_tick(app->stream, util_now_ms()) > 0)
		poll_wake(app);
	if (stream_released(app->stream) >= stream_count(app->stream))
		event_del(app->poll->rate_timer);
}

struct poll *
poll_new(struct app *app)
{
	struct poll *p = util_xcalloc(1, sizeof(*p));
	struct timeval tv = { 0, RATE_TICK_US };

	p->app = app;
	p->script_tail = &p->script;
	p->mask = stream_default_mask();
	p->rate_timer = event_new(app->base, -1, EV_PERSIST, rate_tick, app);
	if (stream_released(app->stream) < stream_count(app->stream))
		event_add(p->rate_timer, &tv);
	return p;
}

void
poll_free(struct poll *p)
{
	if (p == NULL)
		return;
	if (p->rate_timer)
		event_free(p->rate_timer);
	while (p->script != NULL) {
		struct scripted *x = p->script;

		p->script = x->next;
		free(x->body);
		free(x);
	}
	free(p->offsets);
	free(p->log);
	free(p->webhook);
	free(p);
}

/* Telegram clamps integer arguments into range; absent or empty means default. */
static long long
int_arg(const struct call *c, const char *key, long long dflt, long long lo, long long hi,
    int *bad)
{
	json_t *v = json_object_get(c->params.obj, key);
	long long x;

	if (v == NULL || (json_is_string(v) && json_string_value(v)[0] == '\0') ||
	    json_is_null(v))
		return dflt;
	if (util_json_int(v, &x) != 0) {
		*bad = 1;
		return dflt;
	}
	return x < lo ? lo : x > hi ? hi : x;
}

static int
allowed_arg(struct poll *p, const struct call *c)
{
	json_t *v = json_object_get(c->params.obj, "allowed_updates"), *arr = v, *e;
	uint32_t mask = 0;
	size_t i;

	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_string(v)) {
		if (json_string_value(v)[0] == '\0')
			return 0;
		arr = json_loads(json_string_value(v), JSON_DECODE_ANY, NULL);
	}
	if (!json_is_array(arr)) {
		if (arr != v)
			json_decref(arr);
		return -1;
	}
	json_array_foreach(arr, i, e) {
		int t = json_is_string(e) ? stream_type_index(json_string_value(e)) : -1;

		if (t >= 0)
			mask |= 1u << t;
	}
	p->mask = mask ? mask | (1u << STREAM_TYPE_OTHER) : stream_default_mask();
	if (arr != v)
		json_decref(arr);
	return 0;
}

void
poll_log_start(struct call *c)
{
	struct poll *p = c->app->poll;
	struct poll_rec *e;

	if (p->nlog >= POLL_LOG_MAX)
		return;
	if (p->nlog == p->caplog) {
		p->caplog = p->caplog ? p->caplog * 2 : 256;
		p->log = util_xrealloc(p->log, p->caplog * sizeof(*p->log));
	}
	e = &p->log[p->nlog++];
	memset(e, 0, sizeof(*e));
	e->t_ms = c->t_ms;
	e->end_ms = -1;
	if (util_json_int(json_object_get(c->params.obj, "offset"), &e->offset) != 0)
		e->offset = 0;
	snprintf(e->via, sizeof(e->via), "%s", c->via);
	c->poll_log = p->nlog;
}

void
poll_log_end(struct call *c, int status)
{
	struct poll_rec *e = &c->app->poll->log[c->poll_log - 1];

	e->status = status;
	e->end_ms = util_now_ms();
	c->poll_log = 0;
}

void
poll_log_json(const struct app *app, const char *via, size_t since, struct evbuffer *out)
{
	const struct poll *p = app->poll;
	const char *sep = "";

	evbuffer_add(out, "{\"ok\":true,\"polls\":[", 20);
	for (size_t i = since; i < p->nlog; i++) {
		const struct poll_rec *e = &p->log[i];

		if (via != NULL && strcmp(via, e->via) != 0)
			continue;
		evbuffer_add_printf(out, "%s{\"seq\":%zu,\"via\":\"%s\",\"t_ms\":%.3f,"
		    "\"end_ms\":%.3f,\"offset\":%lld,\"status\":%d,\"n\":%d", sep, i + 1,
		    e->via, e->t_ms, e->end_ms, e->offset, e->status, e->n);
		if (e->n > 0)
			evbuffer_add_printf(out, ",\"first_id\":%lld,\"last_id\":%lld",
			    e->first_id, e->last_id);
		evbuffer_add(out, "}", 1);
		sep = ",";
	}
	evbuffer_add_printf(out, "],\"next\":%zu,\"now_ms\":%.3f}", p->nlog, util_now_ms());
}

/* Answer c with what is available; 0 if nothing was (and c is kept). */
static int
answer(struct poll *p, struct call *c, int limit, int force)
{
	struct app *app = p->app;
	struct stream *s = app->stream;
	size_t released = stream_released(s);
	int n = 0;
	double now = util_now_ms();
	struct poll_rec *e = c->poll_log ? &p->log[c->poll_log - 1] : NULL;

	for (size_t i = stream_head(s); i < released && n < limit; i++) {
		struct stream_update *u = stream_at(s, i);

		if (!(p->mask & (1u << u->type)))
			continue;
		evbuffer_add(app->out, n ? "," : "{\"ok\":true,\"result\":[", n ? 1 : 21);
		evbuffer_add(app->out, u->json, u->len);
		stats_handout(app->stats, u, now);
		if (e != NULL) {
			if (n == 0)
				e->first_id = u->id;
			e->last_id = u->id;
			e->n = n + 1;
		}
		n++;
	}
	if (n == 0 && !force)
		return 0;
	if (n == 0)
		evbuffer_add(app->out, "{\"ok\":true,\"result\":[]}", 23);
	else
		evbuffer_add(app->out, "]}", 2);
	if (p->pending == c)
		p->pending = NULL;
	server_call_reply(c, 200, NULL);
	return 1;
}

/* Hostile mode: the next scripted body answers c, whatever was asked. */
static void
answer_scripted(struct poll *p, struct call *c, long long offset)
{
	struct scripted *x = p->script;

	if ((p->script = x->next) == NULL)
		p->script_tail = &p->script;
	if (p->pending == c)
		p->pending = NULL;
	if (c->timer != NULL) {
		event_free(c->timer);
		c->timer = NULL;
	}
	evbuffer_add(c->app->out, x->body, x->len);
	server_call_reply(c, x->status, NULL);
	free(x->body);
	free(x);
}

static void
poll_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct call *c = arg;
	struct poll *p = c->app->poll;

	event_free(c->timer);
	c->timer = NULL;
	answer(p, c, p->pending_limit, 1);
}

static void
conflict(struct call *c, const char *msg)
{
	struct poll *p = c->app->poll;

	if (p->pending == c)
		p->pending = NULL;
	stats_count_conflict(c->app->stats);
	server_call_error(c, 409, msg);
}

void
poll_get_updates(struct call *c)
{
	struct poll *p = c->app->poll;
	struct stream *s = c->app->stream;
	int bad = 0, limit, timeout;
	long long offset;
	struct timeval tv;

	if (p->webhook != NULL) {
		conflict(c, conflict_hook);
		return;
	}
	if (p->pending != NULL)
		conflict(p->pending, conflict_poll);
	offset = int_arg(c, "offset", 0, INT64_MIN, INT64_MAX, &bad);
	limit = (int)int_arg(c, "limit", 100, 1, 100, &bad);
	timeout = (int)int_arg(c, "timeout", 0, 0, LONG_POLL_MAX_S, &bad);
	if (bad || allowed_arg(p, c) != 0) {
		server_call_error(c, 400, "Bad Request: wrong parameter value");
		return;
	}
	if (p->noffsets < OFFSETS_MAX) {
		if (p->noffsets == p->capoffsets) {
			p->capoffsets = p->capoffsets ? p->capoffsets * 2 : 16;
			p->offsets = util_xrealloc(p->offsets,
			    p->capoffsets * sizeof(*p->offsets));
		}
		p->offsets[p->noffsets++] = offset;
	}
	if (p->script != NULL) {
		answer_scripted(p, c, offset);
		return;
	}
	stream_tick(s, util_now_ms());
	if (offset != 0)
		stats_count_confirmed(c->app->stats, stream_confirm(s, offset));
	if (answer(p, c, limit, timeout == 0))
		return;
	p->pending = c;
	p->pending_limit = limit;
	p->pending_offset = offset;
	tv.tv_sec = timeout;
	tv.tv_usec = 0;
	c->timer = evtimer_new(c->app->base, poll_timeout, c);
	evtimer_add(c->timer, &tv);
}

void
poll_wake(struct app *app)
{
	struct poll *p = app->poll;

	if (p->pending != NULL)
		answer(p, p->pending, p->pending_limit, 0);
}

void
poll_set_webhook(struct app *app, const char *url)
{
	struct poll *p = app->poll;

	free(p->webhook);
	p->webhook = url && *url ? util_xstrndup(url, strlen(url)) : NULL;
	if (p->webhook != NULL && p->pending != NULL)
		conflict(p->pending, conflict_hook);
}

const char *
poll_webhook(const struct app *app)
{
	return app->poll->webhook;
}

void
poll_drop_pending(struct app *app)
{
	stats_count_confirmed(app->stats, stream_confirm(app->stream, INT64_MAX));
}

void
poll_script_add(struct app *app, const char *body, size_t len, int status)
{
	struct poll *p = app->poll;
	struct scripted *x = util_xcalloc(1, sizeof(*x));

	x->body = util_xstrndup(body, len);
	x->len = len;
	x->status = status;
	*p->script_tail = x;
	p->script_tail = &x->next;
	if (p->pending != NULL)
		answer_scripted(p, p->pending, p->pending_offset);
}

void
poll_script_dump(const struct app *app, struct evbuffer *out)
{
	const struct poll *p = app->poll;
	size_t n = 0;

	for (const struct scripted *x = p->script; x; x = x->next)
		n++;
	evbuffer_add_printf(out, "{\"ok\":true,\"remaining\":%zu,\"offsets\":[", n);
	for (size_t i = 0; i < p->noffsets; i++)
		evbuffer_add_printf(out, "%s%lld", i ? "," : "", p->offsets[i]);
	evbuffer_add(out, "]}", 2);
}
