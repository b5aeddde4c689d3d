/* Counters and per-update echo tracking (loss, duplicates, order, latency) with JSON views. */
#include "stats.h"
#include "hmap.h"
#include "util.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_METHODS	1024
#define METHOD_NAME_MAX	64
#define MAX_CODE	600

struct method {
	char name[METHOD_NAME_MAX + 1];
	uint64_t calls;
	uint64_t faults;
};

struct echo_ev {
	int32_t upd;
	int32_t next;	/* next echo of the same update, -1 at the end */
	int32_t mid;
	double t_ms;
};

struct stats {
	struct method *methods;
	int nmethods;
	struct hmap method_ix;	/* hash(name) -> mid */
	uint64_t responses[MAX_CODE];
	uint64_t confirmed, handed_out, handed_out_total;
	uint64_t echoed, echoed_expected, echo_events, inversions, conflicts;
	uint64_t connections;		/* TCP connections accepted */
	uint64_t api_connections;	/* of them, those that carried Bot API calls */
	uint64_t api_open, api_open_peak;	/* such connections open now, at most */
	uint64_t concurrent, peak_concurrent;
	struct hmap chat_max;	/* chat id -> highest update id echoed first so far */
	struct echo_ev *ev;
	size_t nev, capev;
	int32_t *first_order;	/* update indexes in order of first echo */
	size_t nfirst, capfirst;
	double *lat;		/* first hand-out to first echo, ms */
	size_t nlat, caplat;
	double *alat;		/* release (arrival) to first echo, ms */
	size_t nalat, capalat;
};

#define GROW(arr, n, cap) do {						\
	if ((n) == (cap)) {						\
		(cap) = (cap) ? (cap) * 2 : 1024;			\
		(arr) = util_xrealloc((arr), (cap) * sizeof(*(arr)));	\
	}								\
} while (0)

struct stats *
stats_new(void)
{
	struct stats *st = util_xcalloc(1, sizeof(*st));

	st->methods = util_xcalloc(MAX_METHODS, sizeof(*st->methods));
	hmap_init(&st->method_ix);
	hmap_init(&st->chat_max);
	return st;
}

void
stats_free(struct stats *st)
{
	if (st == NULL)
		return;
	free(st->methods);
	free(st->ev);
	free(st->first_order);
	free(st->lat);
	free(st->alat);
	hmap_free(&st->method_ix);
	hmap_free(&st->chat_max);
	free(st);
}

int
stats_method_intern(struct stats *st, const char *name, size_t len)
{
	uint64_t h = util_hash_bytes(name, len);
	int64_t *v;

	if (len == 0 || len > METHOD_NAME_MAX)
		return -1;
	/* linear probing over hashes: step the key on a (practically absent) collision */
	for (;; h++) {
		v = hmap_get(&st->method_ix, (int64_t)h);
		if (v == NULL)
			break;
		if (strncmp(st->methods[*v].name, name, len) == 0 &&
		    st->methods[*v].name[len] == '\0')
			return (int)*v;
	}
	if (st->nmethods == MAX_METHODS)
		return -1;
	memcpy(st->methods[st->nmethods].name, name, len);
	st->methods[st->nmethods].name[len] = '\0';
	*hmap_put(&st->method_ix, (int64_t)h, 0) = st->nmethods;
	return st->nmethods++;
}

const char *
stats_method_name(const struct stats *st, int mid)
{
	return mid >= 0 && mid < st->nmethods ? st->methods[mid].name : "?";
}

int
stats_method_find(const struct stats *st, const char *name)
{
	for (int i = 0; i < st->nmethods; i++) {
		if (strcmp(st->methods[i].name, name) == 0)
			return i;
	}
	return -1;
}

void
stats_count_call(struct stats *st, int mid)
{
	st->methods[mid].calls++;
}

void
stats_count_response(struct stats *st, int code)
{
	if (code >= 0 && code < MAX_CODE)
		st->responses[code]++;
}

void
stats_count_fault(struct stats *st, int mid)
{
	st->methods[mid].faults++;
}

void
stats_count_connection(struct stats *st)
{
	st->connections++;
}

void
stats_count_api_connection(struct stats *st, int opened)
{
	if (!opened) {
		if (st->api_open > 0)
			st->api_open--;
		return;
	}
	st->api_connections++;
	if (++st->api_open > st->api_open_peak)
		st->api_open_peak = st->api_open;
}

void
stats_count_conflict(struct stats *st)
{
	st->conflicts++;
}

void
stats_concurrent_inc(struct stats *st)
{
	if (++st->concurrent > st->peak_concurrent)
		st->peak_concurrent = st->concurrent;
}

void
stats_concurrent_dec(struct stats *st)
{
	if (st->concurrent > 0)
		st->concurrent--;
}

void
stats_count_confirmed(struct stats *st, size_t n)
{
	st->confirmed += n;
}

void
stats_handout(struct stats *st, struct stream_update *u, double now_ms)
{
	if (u->handouts++ == 0) {
		u->first_handout_ms = now_ms;
		st->handed_out++;
	}
	st->handed_out_total++;
}

void
stats_echo(struct stats *st, struct stream *s, size_t idx, int mid, double now_ms)
{
	struct stream_update *u = stream_at(s, idx);
	struct echo_ev *e;

	GROW(st->ev, st->nev, st->capev);
	e = &st->ev[st->nev];
	e->upd = (int32_t)idx;
	e->next = -1;
	e->mid = mid;
	e->t_ms = now_ms;
	if (u->echo_tail >= 0)
		st->ev[u->echo_tail].next = (int32_t)st->nev;
	else
		u->echo_head = (int32_t)st->nev;
	u->echo_tail = (int32_t)st->nev;
	st->nev++;
	st->echo_events++;
	if (u->echoes++ > 0)
		return;
	u->first_echo_ms = now_ms;
	st->echoed++;
	if (u->expected)
		st->echoed_expected++;
	GROW(st->first_order, st->nfirst, st->capfirst);
	st->first_order[st->nfirst++] = (int32_t)idx;
	if (u->first_handout_ms >= 0) {
		GROW(st->lat, st->nlat, st->caplat);
		st->lat[st->nlat++] = now_ms - u->first_handout_ms;
	}
	GROW(st->alat, st->nalat, st->capalat);
	st->alat[st->nalat++] = now_ms - u->released_ms;
	if (u->has_chat) {
		int64_t *max = hmap_put(&st->chat_max, u->chat_id, INT64_MIN);

		if (*max > u->id)
			st->inversions++;
		else
			*max = u->id;
	}
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(const double *v, size_t n, double p)
{
	size_t k;

	if (n == 0)
		return 0;
	k = (size_t)ceil(p / 100.0 * (double)n);
	return v[k ? k - 1 : 0];
}

static void
dump_latency(struct evbuffer *buf, const char *name, const double *lat, size_t n)
{
	double *v = NULL;

	if (n > 0) {
		v = util_xmalloc(n * sizeof(*v));
		memcpy(v, lat, n * sizeof(*v));
		qsort(v, n, sizeof(*v), cmp_double);
	}
	evbuffer_add_printf(buf, "\"%s\":{\"count\":%zu,\"p50\":%.3f,"
	    "\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f}", name, n, pct(v, n, 50),
	    pct(v, n, 90), pct(v, n, 99), n ? v[n - 1] : 0.0);
	free(v);
}

static void
dump_methods(struct stats *st, struct evbuffer *buf, int faults)
{
	const char *sep = "";

	evbuffer_add(buf, "{", 1);
	for (int i = 0; i < st->nmethods; i++) {
		uint64_t n = faults ? st->methods[i].faults : st->methods[i].calls;

		if (n == 0)
			continue;
		evbuffer_add_printf(buf, "%s\"%s\":%" PRIu64, sep, st->methods[i].name, n);
		sep = ",";
	}
	evbuffer_add(buf, "}", 1);
}

void
stats_dump(struct stats *st, struct stream *s, const char *webhook, struct evbuffer *buf)
{
	uint64_t expected = stream_expected(s);
	const char *sep = "";
	size_t n = stream_count(s);

	evbuffer_add_printf(buf, "{\"updates_total\":%zu,\"updates_released\":%zu,"
	    "\"handed_out\":%" PRIu64 ",\"handed_out_total\":%" PRIu64 ","
	    "\"confirmed\":%" PRIu64 ",\"expected_echoes\":%" PRIu64 ","
	    "\"echoed\":%" PRIu64 ",\"missing\":%" PRIu64 ",\"duplicates\":%" PRIu64 ","
	    "\"inversions\":%" PRIu64 ",", n, stream_released(s), st->handed_out,
	    st->handed_out_total, st->confirmed, expected, st->echoed,
	    expected - st->echoed_expected, st->echo_events - st->echoed,
	    st->inversions);
	dump_latency(buf, "latency_ms", st->lat, st->nlat);
	evbuffer_add(buf, ",", 1);
	dump_latency(buf, "arrival_latency_ms", st->alat, st->nalat);
	evbuffer_add_printf(buf, ",\"peak_concurrent\":%" PRIu64 ",\"concurrent\":%"
	    PRIu64 ",\"calls\":", st->peak_concurrent, st->concurrent);
	dump_methods(st, buf, 0);
	evbuffer_add(buf, ",\"responses\":{", 14);
	for (int c = 0; c < MAX_CODE; c++) {
		if (st->responses[c] == 0)
			continue;
		evbuffer_add_printf(buf, "%s\"%d\":%" PRIu64, sep, c, st->responses[c]);
		sep = ",";
	}
	evbuffer_add(buf, "},\"faults_injected\":", 20);
	dump_methods(st, buf, 1);
	evbuffer_add_printf(buf, ",\"conflicts\":%" PRIu64 ",\"connections\":%" PRIu64
	    ",\"api_connections\":%" PRIu64 ",\"api_connections_peak\":%" PRIu64
	    ",\"webhook\":", st->conflicts, st->connections, st->api_connections,
	    st->api_open_peak);
	if (webhook != NULL)
		util_evbuffer_add_json_string(buf, webhook, strlen(webhook));
	else
		evbuffer_add(buf, "null", 4);
	evbuffer_add_printf(buf, ",\"uptime_ms\":%.3f}", util_now_ms());
}

void
stats_echoes_json(struct stats *st, struct stream *s, size_t idx, struct evbuffer *buf)
{
	struct stream_update *u = stream_at(s, idx);
	const char *sep = "";

	evbuffer_add_printf(buf, "{\"id\":%lld,\"type\":\"%s\",\"chat_id\":",
	    (long long)u->id, stream_type_name(u->type));
	if (u->has_chat)
		evbuffer_add_printf(buf, "%lld", (long long)u->chat_id);
	else
		evbuffer_add(buf, "null", 4);
	evbuffer_add(buf, ",\"echoes\":[", 11);
	for (int32_t e = u->echo_head; e >= 0; e = st->ev[e].next) {
		evbuffer_add_printf(buf, "%s{\"t_ms\":%.3f,\"method\":\"%s\"}", sep,
		    st->ev[e].t_ms, st->methods[st->ev[e].mid].name);
		sep = ",";
	}
	evbuffer_add(buf, "]}", 2);
}

void
stats_chatlog_json(struct stats *st, struct stream *s, int64_t chat_id,
    struct evbuffer *buf)
{
	const char *sep = "";

	evbuffer_add_printf(buf, "{\"chat_id\":%lld,\"ids\":[", (long long)chat_id);
	for (size_t i = 0; i < st->nfirst; i++) {
		struct stream_update *u = stream_at(s, (size_t)st->first_order[i]);

		if (u->has_chat && u->chat_id == chat_id) {
			evbuffer_add_printf(buf, "%s%lld", sep, (long long)u->id);
			sep = ",";
		}
	}
	evbuffer_add(buf, "]}", 2);
}

void
stats_reset(struct stats *st, struct stream *s)
{
	size_t n = stream_count(s);

	for (int i = 0; i < st->nmethods; i++)
		st->methods[i].calls = st->methods[i].faults = 0;
	memset(st->responses, 0, sizeof(st->responses));
	st->confirmed = st->handed_out = st->handed_out_total = 0;
	st->echoed = st->echoed_expected = st->echo_events = 0;
	st->inversions = st->conflicts = st->connections = st->api_connections = 0;
	st->api_open_peak = st->api_open;
	st->peak_concurrent = st->concurrent;
	hmap_clear(&st->chat_max);
	st->nev = st->nfirst = st->nlat = st->nalat = 0;
	for (size_t i = 0; i < n; i++) {
		struct stream_update *u = stream_at(s, i);

		u->first_handout_ms = u->first_echo_ms = -1;
		u->handouts = u->echoes = 0;
		u->echo_head = u->echo_tail = -1;
	}
}
