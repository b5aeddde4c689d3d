/* Prometheus text metrics: counters, gauges and histograms, served by metrics_http.c. */
#include "metrics.h"
#include "clock.h"
#include "metrics_http.h"
#include "wstats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

/* Distinct methods counted by name; the rest is "other". */
#define API_METHODS 128
#define API_NAME 48

/* Bucket upper bounds in seconds, shared by both histograms. */
static const double bounds[] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
};
#define NBOUNDS (sizeof(bounds) / sizeof(bounds[0]))

struct histo {
	uint64_t bucket[NBOUNDS];	/* non-cumulative; summed when rendered */
	uint64_t count;
	double sum;
};

struct metrics {
	struct event_base *base;
	struct status_ops ops;
	struct metrics_http *http;
	struct {
		char name[API_NAME];
		uint64_t n[WS__COUNT];
	} api[API_METHODS];
	int napi;
	uint64_t n429;
	struct histo handler, dispatch;
};

struct metrics *metrics_new(struct event_base *base, const struct status_ops *ops)
{
	struct metrics *mt = calloc(1, sizeof(*mt));

	if (mt != NULL) {
		mt->base = base;
		mt->ops = *ops;
	}
	return mt;
}

void metrics_free(struct metrics *mt)
{
	if (mt == NULL)
		return;
	metrics_http_free(mt->http);
	free(mt);
}

static void observe(struct histo *h, double secs)
{
	size_t i;

	for (i = 0; i < NBOUNDS && secs > bounds[i]; i++)
		;
	if (i < NBOUNDS)
		h->bucket[i]++;
	h->count++;
	h->sum += secs;
}

void metrics_observe_handler(struct metrics *mt, uint32_t ms)
{
	if (mt != NULL)
		observe(&mt->handler, ms / 1000.0);
}

void metrics_observe_dispatch(struct metrics *mt, int64_t ms)
{
	if (mt != NULL)
		observe(&mt->dispatch, (ms > 0 ? ms : 0) / 1000.0);
}

/* A method name is a label value: keep it to the Bot API's alphabet. */
static int api_slot(struct metrics *mt, const char *method)
{
	size_t n = strlen(method);
	int i;

	if (n == 0 || n >= API_NAME || strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789_") != n)
		method = "other";
	for (i = 0; i < mt->napi; i++)
		if (strcmp(mt->api[i].name, method) == 0)
			return i;
	if (mt->napi == API_METHODS) {
		i = API_METHODS - 1;
		snprintf(mt->api[i].name, API_NAME, "other");
		return i;
	}
	snprintf(mt->api[mt->napi].name, API_NAME, "%s", method);
	return mt->napi++;
}

int metrics_add_api(struct metrics *mt, const json_t *payload)
{
	const json_t *api = json_object_get(payload, "api"), *n429, *v, *cnt;
	const char *method;

	n429 = json_object_get(payload, "429");
	if (!json_is_object(api) || !json_is_integer(n429) || json_integer_value(n429) < 0)
		return -1;
	json_object_foreach((json_t *)api, method, v) {
		int slot;

		if (!json_is_object(v))
			return -1;
		slot = api_slot(mt, method);
		for (int k = 0; k < WS__COUNT; k++) {
			cnt = json_object_get(v, wstats_outcome_names[k]);
			if (json_is_integer(cnt) && json_integer_value(cnt) > 0)
				mt->api[slot].n[k] += (uint64_t)json_integer_value(cnt);
		}
	}
	mt->n429 += (uint64_t)json_integer_value(n429);
	return 0;
}

static void head(struct evbuffer *out, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(struct evbuffer *out, const char *name, const char *help,
    uint64_t v)
{
	head(out, name, "counter", help);
	evbuffer_add_printf(out, "%s %llu\n", name, (unsigned long long)v);
}

static void gauge(struct evbuffer *out, const char *name, const char *help, double v)
{
	head(out, name, "gauge", help);
	evbuffer_add_printf(out, "%s %.17g\n", name, v);
}

static void histogram(struct evbuffer *out, const char *name, const char *help,
    const struct histo *h)
{
	uint64_t cum = 0;

	head(out, name, "histogram", help);
	for (size_t i = 0; i < NBOUNDS; i++) {
		cum += h->bucket[i];
		evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i],
		    (unsigned long long)cum);
	}
	evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n"
	    "%s_count %llu\n", name, (unsigned long long)h->count, name, h->sum,
	    name, (unsigned long long)h->count);
}

/* Cluster mode only. */
static void render_cluster(struct evbuffer *out, const struct status_cluster *c)
{
	gauge(out, "tgrun_cluster_leader", "1 while this node is the cluster's leader.",
	    strcmp(c->role, "leader") == 0);
	gauge(out, "tgrun_cluster_nodes", "Nodes with a live heartbeat.", (double)c->nnodes);
	counter(out, "tgrun_cluster_pulled_total", "Work items this node pulled.", c->pulled);
	counter(out, "tgrun_cluster_ran_total", "Work items this node ran to the end.",
	    c->ran);
	head(out, "tgrun_cluster_stream_messages", "gauge",
	    "Messages in the cluster's streams (-1: unknown).");
	evbuffer_add_printf(out, "tgrun_cluster_stream_messages{stream=\"journal\"} %lld\n"
	    "tgrun_cluster_stream_messages{stream=\"work\"} %lld\n",
	    c->journal.known ? (long long)c->journal.messages : -1LL,
	    c->work.known ? (long long)c->work.messages : -1LL);
}

void metrics_render(struct metrics *mt, struct evbuffer *out)
{
	struct status st;
	int64_t now = clock_ms();
	int maxslot = -1;

	mt->ops.snapshot(mt->ops.arg, &st);

	counter(out, "tgrun_updates_fetched_total", "Updates fetched with getUpdates.",
	    st.fetched);
	counter(out, "tgrun_updates_done_total", "Updates the handler finished.",
	    st.done);
	counter(out, "tgrun_updates_failed_total",
	    "Updates whose handler failed, was cancelled or timed out.", st.failed);
	counter(out, "tgrun_updates_retried_total",
	    "Deliveries repeated after a worker died.", st.retried);
	counter(out, "tgrun_updates_dead_lettered_total",
	    "Updates given up after max_attempts.", st.dead_lettered);
	counter(out, "tgrun_updates_timed_out_total",
	    "Updates cancelled after update_timeout.", st.timed_out);

	head(out, "tgrun_api_calls_total", "counter",
	    "Bot API call attempts from the workers by method and outcome.");
	for (int i = 0; i < mt->napi; i++)
		for (int k = 0; k < WS__COUNT; k++)
			evbuffer_add_printf(out, "tgrun_api_calls_total{method=\"%s\","
			    "outcome=\"%s\"} %llu\n", mt->api[i].name,
			    wstats_outcome_names[k], (unsigned long long)mt->api[i].n[k]);
	counter(out, "tgrun_api_429_total",
	    "Bot API answers 429 (flood limit) seen by the workers.", mt->n429);

	gauge(out, "tgrun_updates_in_flight", "Updates running in workers.", st.inflight);
	gauge(out, "tgrun_updates_pending", "Updates fetched and not finished.",
	    st.pending);
	head(out, "tgrun_worker_in_flight", "gauge",
	    "Updates running per worker slot (every generation).");
	for (size_t i = 0; i < st.nworkers; i++)
		if (st.workers[i].slot > maxslot)
			maxslot = st.workers[i].slot;
	for (int s = 0; s <= maxslot; s++) {
		int n = 0, any = 0;

		for (size_t i = 0; i < st.nworkers; i++) {
			if (st.workers[i].slot == s) {
				n += st.workers[i].inflight;
				any = 1;
			}
		}
		if (any)
			evbuffer_add_printf(out, "tgrun_worker_in_flight{slot=\"%d\"} %d\n",
			    s, n);
	}
	gauge(out, "tgrun_journal_bytes", "Journal file and WAL size in bytes.",
	    (double)st.journal_bytes);
	gauge(out, "tgrun_seconds_since_last_poll",
	    "Seconds since the last successful getUpdates (-1 before the first).",
	    st.last_poll_ok_ms ? (double)(now - st.last_poll_ok_ms) / 1000.0 : -1.0);

	histogram(out, "tgrun_handler_duration_seconds",
	    "Handler run time per update, from the workers' DONE.", &mt->handler);
	histogram(out, "tgrun_dispatch_latency_seconds",
	    "Time from fetch to first dispatch to a worker.", &mt->dispatch);
	if (st.cluster != NULL)
		render_cluster(out, st.cluster);
}

int metrics_listen(struct metrics *mt, const char *listen, char *err, size_t errlen)
{
	if (mt->http != NULL) {
		snprintf(err, errlen, "metrics: already listening");
		return -1;
	}
	mt->http = metrics_http_new(mt->base, mt, listen, err, errlen);
	return mt->http != NULL ? 0 : -1;
}
