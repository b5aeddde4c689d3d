/* tgrun-fakeapi: a fake Telegram Bot API server for tests and benchmarks. */
#include "app.h"
#include "fault.h"
#include "files.h"
#include "gen.h"
#include "message.h"
#include "opts.h"
#include "poll.h"
#include "record.h"
#include "server.h"
#include "stats.h"
#include "stream.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

static int
load_jsonl(struct stream *s, const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL, err[160];
	size_t cap = 0, lineno = 0;
	ssize_t n;
	int rc = 0;

	if (f == NULL) {
		fprintf(stderr, "tgrun-fakeapi: open %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (rc == 0 && (n = getline(&line, &cap, f)) != -1) {
		json_error_t jerr;
		json_t *u;

		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' ||
		    line[n - 1] == ' '))
			line[--n] = '\0';
		if (n == 0)
			continue;
		u = json_loadb(line, (size_t)n, 0, &jerr);
		if (u == NULL) {
			fprintf(stderr, "tgrun-fakeapi: %s:%zu: %s\n", path, lineno, jerr.text);
			rc = -1;
		} else if (stream_add(s, u, err, sizeof(err)) < 0) {
			fprintf(stderr, "tgrun-fakeapi: %s:%zu: %s\n", path, lineno, err);
			rc = -1;
		}
		json_decref(u);
	}
	free(line);
	fclose(f);
	return rc;
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct app *app = arg;

	fprintf(stderr, "fakeapi: signal %d, exiting\n", (int)sig);
	event_base_loopbreak(app->base);
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct app app;
	struct event *sigterm = NULL, *sigint = NULL;
	struct event_config *cfg;
	char err[160];
	int port, rc = 2;

	switch (opts_parse(argc, argv, &o)) {
	case 1:
		return 0;
	case -1:
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	/* evhttp allocates and frees a few dozen small blocks per request: keep the
	 * heap top and fast bins warm instead of trimming and consolidating */
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	mallopt(M_TOP_PAD, 16 << 20);
	mallopt(M_MMAP_THRESHOLD, 16 << 20);
	util_clock_init();
	memset(&app, 0, sizeof(app));
	app.opts = &o;
	app.token = o.token;
	app.token_len = strlen(o.token);
	cfg = event_config_new();
	/* batch epoll_ctl calls: evhttp flips read/write interest on every request */
	if (cfg != NULL)
		event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	app.base = cfg ? event_base_new_with_config(cfg) : NULL;
	if (cfg != NULL)
		event_config_free(cfg);
	app.out = evbuffer_new();
	app.stream = stream_new(o.first_id, o.rate);
	app.stats = stats_new();
	app.record = record_new(o.record_limit);
	app.faults = fault_table_new();
	app.files = files_new();
	app.msgs = message_new();
	util_rng_seed(&app.rng, o.gen.seed ^ 0xfa017ULL);
	if (app.base == NULL || app.out == NULL) {
		fprintf(stderr, "tgrun-fakeapi: libevent initialisation failed\n");
		goto out;
	}
	for (int i = 0; i < o.nfaults; i++)
		fault_table_set(app.faults, &o.faults[i]);
	if (o.hold)
		stream_hold(app.stream, 1, util_now_ms());
	if (o.updates_file != NULL && load_jsonl(app.stream, o.updates_file) != 0)
		goto out;
	if (o.gen.count > 0 && gen_run(app.stream, &o.gen, err, sizeof(err)) != 0) {
		fprintf(stderr, "tgrun-fakeapi: generating updates: %s\n", err);
		goto out;
	}
	stream_rate_restart(app.stream, util_now_ms());
	app.poll = poll_new(&app);
	port = server_start(&app, o.port);
	if (port < 0) {
		fprintf(stderr, "tgrun-fakeapi: cannot listen on 127.0.0.1:%d: %s\n", o.port,
		    strerror(errno));
		goto out;
	}
	sigterm = evsignal_new(app.base, SIGTERM, on_signal, &app);
	sigint = evsignal_new(app.base, SIGINT, on_signal, &app);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	printf("%d\n", port);
	fflush(stdout);
	fprintf(stderr, "fakeapi: listening on 127.0.0.1:%d, %zu updates in the stream, "
	    "rate %g/s, %d fault rules\n", port, stream_count(app.stream), o.rate,
	    o.nfaults);
	event_base_dispatch(app.base);
	rc = 0;
out:
	server_stop(&app);
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	poll_free(app.poll);
	message_free(app.msgs);
	files_free(app.files);
	fault_table_free(app.faults);
	stats_free(app.stats);
	record_free(app.record);
	stream_free(app.stream);
	if (app.out)
		evbuffer_free(app.out);
	if (app.base)
		event_base_free(app.base);
	libevent_global_shutdown();
	return rc;
}
