/* Unit tests of daemon/metrics.c: the Prometheus text rendered from a status snapshot, with no master. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "clock.h"
#include "metrics.h"

static struct status_worker fake_workers[] = {
	{ .slot = 0, .gen = 1, .pid = 100, .state = "draining", .inflight = 2 },
	{ .slot = 0, .gen = 2, .pid = 101, .state = "ready", .inflight = 3 },
	{ .slot = 1, .gen = 2, .pid = 102, .state = "ready", .inflight = 4 },
};

static int snapshots;

static void fake_snapshot(void *arg, struct status *st)
{
	snapshots++;
	*st = (struct status){
		.fetched = 1000, .done = 990, .failed = 3, .retried = 2,
		.dead_lettered = 1, .timed_out = 4, .inflight = 9, .pending = 10,
		.journal_bytes = 65536, .last_poll_ok_ms = *(int64_t *)arg,
		.workers = fake_workers,
		.nworkers = sizeof(fake_workers) / sizeof(fake_workers[0]),
	};
}

/* The rendered text, NUL-terminated (caller frees). */
static char *render(int64_t last_poll)
{
	struct status_ops ops = { .snapshot = fake_snapshot, .arg = &last_poll };
	struct event_base *base = event_base_new();
	struct metrics *mt = metrics_new(base, &ops);
	struct evbuffer *out = evbuffer_new();
	json_t *api;
	char *text;
	size_t n;

	assert_non_null(mt);
	metrics_observe_handler(mt, 7);		/* 0.007 s: in the 0.01 bucket */
	metrics_observe_handler(mt, 2000);	/* 2 s: in the 2.5 bucket */
	metrics_observe_dispatch(mt, 40);
	api = json_pack("{s:{s:{s:i, s:i}}, s:i}", "api", "sendMessage", "ok", 5,
	    "network_error", 1, "429", 2);
	assert_int_equal(metrics_add_api(mt, api), 0);
	json_decref(api);
	api = json_pack("{s:s}", "api", "nonsense");
	assert_int_equal(metrics_add_api(mt, api), -1);
	json_decref(api);
	metrics_render(mt, out);
	n = evbuffer_get_length(out);
	text = malloc(n + 1);
	evbuffer_remove(out, text, n);
	text[n] = '\0';
	evbuffer_free(out);
	metrics_free(mt);
	event_base_free(base);
	return text;
}

static void test_counters_and_gauges_come_from_the_snapshot(void **state)
{
	static const char *const lines[] = {
		"tgrun_updates_fetched_total 1000\n",
		"tgrun_updates_done_total 990\n",
		"tgrun_updates_failed_total 3\n",
		"tgrun_updates_retried_total 2\n",
		"tgrun_updates_dead_lettered_total 1\n",
		"tgrun_updates_timed_out_total 4\n",
		"tgrun_updates_in_flight 9\n",
		"tgrun_updates_pending 10\n",
		"tgrun_journal_bytes 65536\n",
		/* Slot 0's two generations add up. */
		"tgrun_worker_in_flight{slot=\"0\"} 5\n",
		"tgrun_worker_in_flight{slot=\"1\"} 4\n",
		"tgrun_api_calls_total{method=\"sendMessage\",outcome=\"ok\"} 5\n",
		"tgrun_api_calls_total{method=\"sendMessage\",outcome=\"network_error\"} 1\n",
		"tgrun_api_429_total 2\n",
		"# TYPE tgrun_updates_fetched_total counter\n",
		"# TYPE tgrun_updates_pending gauge\n",
	};
	char *text;

	snapshots = 0;
	text = render(0);
	assert_int_equal(snapshots, 1);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		if (strstr(text, lines[i]) == NULL)
			fail_msg("missing line %s in:\n%s", lines[i], text);
	/* Before the first poll the age is -1. */
	assert_non_null(strstr(text, "tgrun_seconds_since_last_poll -1"));
	free(text);
}

static void test_histograms_are_cumulative(void **state)
{
	char *text = render(clock_ms() - 1500);

	assert_non_null(strstr(text, "tgrun_handler_duration_seconds_bucket{le=\"0.005\"} 0\n"));
	assert_non_null(strstr(text, "tgrun_handler_duration_seconds_bucket{le=\"0.01\"} 1\n"));
	assert_non_null(strstr(text, "tgrun_handler_duration_seconds_bucket{le=\"1\"} 1\n"));
	assert_non_null(strstr(text, "tgrun_handler_duration_seconds_bucket{le=\"2.5\"} 2\n"));
	assert_non_null(strstr(text, "tgrun_handler_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
	assert_non_null(strstr(text, "tgrun_handler_duration_seconds_count 2\n"));
	assert_non_null(strstr(text, "tgrun_handler_duration_seconds_sum 2.007"));
	assert_non_null(strstr(text, "tgrun_dispatch_latency_seconds_bucket{le=\"0.05\"} 1\n"));
	/* A poll 1.5 s ago. */
	assert_non_null(strstr(text, "tgrun_seconds_since_last_poll 1.5"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counters_and_gauges_come_from_the_snapshot),
		cmocka_unit_test(test_histograms_are_cumulative),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
