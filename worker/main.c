/* tgrun-worker: runs the handler for updates the master sends over fd 3, each on a fiber. */
#include "evcurl.h"
#include "clock.h"
#include "fiber.h"
#include "fconn.h"
#include "frame.h"
#include "handler.h"
#include "log.h"
#include "sched.h"
#include "tgrun.h"
#include "throttle.h"
#include "worker.h"
#include "wstats.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

/* Free stacks kept for reuse. */
#define STACK_POOL_KEEP 256

static void worker_exit(struct worker *w, int status) __attribute__((noreturn));

/*
 * Before the handler loads: no descriptor of ours crosses an exec of a
 * program the handler starts (libcurl makes its wake-up socketpair without
 * close-on-exec; its connections come from evcurl with it).
 */
static void cloexec_all(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		int fd = atoi(e->d_name);

		if (fd > 2 && fd != dirfd(d))
			(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	closedir(d);
}
static void start_update(struct worker *w, struct wupdate *u);

static void send_frame(struct worker *w, uint8_t type, uint16_t flags,
    uint64_t seq, uint32_t arg, const void *p, size_t len)
{
	if (w->orphaned)
		return;		/* nobody reads them */
	if (frame_write(fconn_output(w->conn), type, flags, seq, arg, p, len) != 0) {
		log_err("cannot queue a %s frame; exiting", frame_type_name(type));
		exit(WORKER_EXIT_FAILED);
	}
	fconn_kick(w->conn);	/* written once, at the end of this loop turn */
}

/*
 * Update `id` ended with enum frame_status `status` after `ms`; `why` it
 * failed (one line of at most FRAME_DONE_ERR_MAX bytes), or NULL.
 */
static void send_done(struct worker *w, uint64_t id, int status, uint32_t ms,
    const char *why)
{
	orphan_note_done(w, (int64_t)id, status);
	send_frame(w, FRAME_DONE, (uint16_t)status, id, ms, why, why ? strlen(why) : 0);
}

/* Write out what is queued, then the process exits (inside a callback too). */
static void flush_out(struct worker *w)
{
	if (w->conn == NULL || w->orphaned)
		return;
	fconn_flush_blocking(w->conn);
}

static void fail_start(struct worker *w, enum frame_fail why, const char *msg)
{
	log_err("%s", msg);
	send_frame(w, FRAME_FAIL, (uint16_t)why, 0, 0, msg, strlen(msg));
	worker_exit(w, WORKER_EXIT_UNUSABLE);
}

static void on_config(struct worker *w, const struct frame *f)
{
	char err[512], ready[64];
	json_error_t je;
	json_t *j;
	int n;

	if (w->configured) {
		log_warn("second CONFIG frame ignored");
		return;
	}
	j = json_loadb(f->payload, f->len, 0, &je);
	if (j == NULL || settings_from_json(&w->bot.set, j, err, sizeof(err)) != 0 ||
	    orphan_setup(w, j, err, sizeof(err)) != 0) {
		json_decref(j);
		fail_start(w, FRAME_FAIL_CONFIG, j ? err : "CONFIG frame is not JSON");
	}
	json_decref(j);
	log_add_secret(w->bot.set.token);
	botapi_proxy_secrets(w->bot.set.proxy);
	log_init("worker", w->bot.set.slot);
	if (w->bot.set.log_level >= LOG_LVL_ERR && w->bot.set.log_level <= LOG_LVL_DEBUG)
		log_set_level((enum log_level)w->bot.set.log_level);
	w->pool = fiber_pool_new((size_t)w->bot.set.stack_size, STACK_POOL_KEEP);
	snprintf(err, sizeof(err), "worker %d: stack overflow in a fiber (stack_size %ld "
	    "bytes): the guard region was hit; raise [workers] stack_size or use less "
	    "stack\n", w->bot.set.slot, w->bot.set.stack_size);
	if (fiber_report_overflow(err) != 0)
		log_warn("cannot catch stack overflows in fibers: %s", strerror(errno));
	w->sched = w->pool ? sched_new(w->base, w->pool) : NULL;
	/* One kept connection per call this worker may have in flight. */
	w->ec = evcurl_new(w->base, w->bot.set.worker_concurrency);
	w->ec_http = evcurl_new(w->base, w->bot.set.worker_concurrency);
	/*
	 * The Bot API over HTTP/2 (TLS, not [api] http_version = 1.1): a server
	 * allows ~100 streams a connection, so a few connections carry every
	 * call this worker may have in flight. Lifted at the first answer over
	 * HTTP/1.x.
	 */
	if (w->ec != NULL && w->bot.set.net.http != BOTAPI_HTTP_1_1 &&
	    strncmp(w->bot.set.net.api_url, "https://", 8) == 0)
		evcurl_http2_cap(w->ec, (w->bot.set.worker_concurrency + 49) / 50 + 1);
	if (w->sched == NULL || w->ec == NULL || w->ec_http == NULL)
		fail_start(w, FRAME_FAIL_CONFIG, "cannot set up the fiber runtime");
	cloexec_all();
	if (w->bot.set.throttle &&
	    (w->throttle = throttle_attach(THROTTLE_FD, err, sizeof(err))) == NULL) {
		char msg[640];

		snprintf(msg, sizeof(msg), "[throttle] is enabled but the master's "
		    "shared buckets are unusable: %s", err);
		fail_start(w, FRAME_FAIL_CONFIG, msg);
	}
	if (handler_load(&w->bot.h, w->bot.set.handler_path, err, sizeof(err)) != 0)
		fail_start(w, FRAME_FAIL_LOAD, err);
	if (w->bot.h.init != NULL && w->bot.h.init(&w->bot) != 0) {
		snprintf(err, sizeof(err), "handler %s: tgrun_init failed",
		    w->bot.set.handler_path);
		fail_start(w, FRAME_FAIL_INIT, err);
	}
	w->configured = 1;
	if (w->check_only) {
		/* tgrund -t: it loads and starts; tgrun_fini runs on the way out. */
		log_debug("handler %s: loaded and initialised", w->bot.set.handler_path);
		worker_exit(w, WORKER_EXIT_OK);
	}
	n = snprintf(ready, sizeof(ready), "{\"pid\":%ld}", (long)getpid());
	send_frame(w, FRAME_READY, 0, 0, 0, ready, (size_t)n);
	log_debug("ready (handler %s, %d updates at once, %ld-byte stacks)",
	    w->bot.set.handler_path, w->bot.set.worker_concurrency,
	    w->bot.set.stack_size);
}

/* ---- updates ----------------------------------------------------------------- */

static void update_main(struct task *t, void *arg)
{
	struct wupdate *u = arg;
	struct tgrun_ctx *ctx = task_data(t);
	int rc = u->w_bot->h.handle(ctx, u->update);

	u->status = rc == 0 ? FRAME_ST_OK : u->no_retry ? FRAME_ST_FINAL : FRAME_ST_ERROR;
	if (u->cancelled && rc != 0)
		u->status = FRAME_ST_CANCELLED;
	/* The update is done only when its attached children are. */
	while (u->live_children > 0) {
		u->main = t;
		u->main_waiting = 1;
		(void)sched_park_nocancel("children", -1);
		u->main_waiting = 0;
	}
}

static void update_free(struct worker *w, struct wupdate *u)
{
	u64map_del(&w->updates, (uint64_t)u->id);
	json_decref(u->update);
	free(u->err);
	free(u);
}

/* Why `u` failed, for the log and the DONE frame: its error, bounded. */
static const char *update_failure(struct wupdate *u)
{
	char text[FRAME_DONE_ERR_MAX + 64];

	if (u->err == NULL)
		return "handler returned -1";
	if (!u->err_explicit) {
		snprintf(text, sizeof(text), "handler returned -1; last call error: %s",
		    u->err);
		ctx_update_error(u, text, 1);
	}
	return u->err;
}

static void maybe_exit(struct worker *w)
{
	if (w->draining && w->updates.count == 0 && sched_count(w->sched) == 0 &&
	    !w->quit) {
		if (w->orphaned)
			orphan_end(w);
		else
			log_debug("drained: exiting");
		w->quit = 1;
	}
}

/* The master is gone: what has not started is left to the next one. */
static void drop_queued(struct worker *w)
{
	struct wupdate *u;

	while ((u = TAILQ_FIRST(&w->queue)) != NULL) {
		TAILQ_REMOVE(&w->queue, u, queue);
		update_free(w, u);
	}
}

/* On the scheduler's stack once the update's fiber (and children) ended. */
static void update_done(struct task *t, void *arg)
{
	struct wupdate *u = arg;
	struct worker *w = u->w_bot->w;
	struct tgrun_ctx *ctx = task_data(t);
	uint32_t ms = (uint32_t)(clock_ms() - u->t0);
	int failed;

	ctx->task = NULL;
	ctx_free(ctx);
	spawn_release_handles(u);
	failed = u->status == FRAME_ST_ERROR || u->status == FRAME_ST_FINAL;
	if (failed)
		log_info("update %lld (%s, attempt %d): handler failed%s: %s",
		    (long long)u->id, u->type, u->attempt,
		    u->status == FRAME_ST_FINAL ? " (no retry)" : "", update_failure(u));
	send_done(w, (uint64_t)u->id, u->status, ms, failed ? update_failure(u) : NULL);
	update_free(w, u);
	w->running--;
	while (!TAILQ_EMPTY(&w->queue) && w->running < w->bot.set.worker_concurrency) {
		struct wupdate *next = TAILQ_FIRST(&w->queue);

		TAILQ_REMOVE(&w->queue, next, queue);
		next->waiting = 0;
		start_update(w, next);
	}
	maybe_exit(w);
}

static void start_update(struct worker *w, struct wupdate *u)
{
	struct tgrun_ctx *ctx = ctx_new(&w->bot, u);
	struct task *t = ctx ? sched_spawn(w->sched, update_main, u, update_done, u) : NULL;

	if (t == NULL) {
		log_err("update %lld: out of memory for its fiber", (long long)u->id);
		ctx_free(ctx);
		send_done(w, (uint64_t)u->id, FRAME_ST_ERROR, 0,
		    "the worker is out of memory for a fiber");
		update_free(w, u);
		return;
	}
	ctx->task = t;
	task_set_data(t, ctx);
	u->t0 = clock_ms();
	w->running++;
}

static void on_update(struct worker *w, const struct frame *f)
{
	struct wupdate *u;
	json_error_t je;

	if (w->draining) {
		log_warn("update %llu after DRAIN: refused", (unsigned long long)f->seq);
		send_done(w, f->seq, FRAME_ST_CANCELLED, 0, NULL);
		return;
	}
	if (u64map_get(&w->updates, f->seq) != NULL) {
		log_warn("update %llu sent twice: ignored", (unsigned long long)f->seq);
		return;
	}
	u = calloc(1, sizeof(*u));
	if (u == NULL)
		fatalx("out of memory for update %llu", (unsigned long long)f->seq);
	u->id = (int64_t)f->seq;
	u->attempt = (int)f->arg;
	u->w_bot = &w->bot;
	/*
	 * jansson's lexer skips a NUL byte right after a number or a literal
	 * ("[1\0]" loads); that is not JSON and the master's scanner refuses
	 * it, so refuse it here too: both accept exactly the same updates.
	 */
	if (memchr(f->payload, '\0', f->len) != NULL) {
		u->update = NULL;
		snprintf(je.text, sizeof(je.text), "a NUL byte in the text");
	} else {
		u->update = json_loadb(f->payload, f->len, 0, &je);
	}
	if (u->update == NULL || !json_is_object(u->update)) {
		char why[sizeof(je.text) + 32];

		snprintf(why, sizeof(why), "not a JSON object: %s", je.text);
		log_warn("update %lld: %s", (long long)u->id, why);
		json_decref(u->update);
		free(u);
		send_done(w, f->seq, FRAME_ST_ERROR, 0, why);
		return;
	}
	wupdate_describe(u);
	log_debug("update %lld (attempt %d) received", (long long)u->id, u->attempt);
	if (u64map_put(&w->updates, f->seq, u) != 0)
		fatalx("out of memory for update %lld", (long long)u->id);
	if (w->running < w->bot.set.worker_concurrency) {
		start_update(w, u);
		return;
	}
	TAILQ_INSERT_TAIL(&w->queue, u, queue);
	u->waiting = 1;
}

static void on_cancel(struct worker *w, const struct frame *f)
{
	struct wupdate *u = u64map_get(&w->updates, f->seq);

	if (u == NULL)
		return;
	if (u->waiting) {
		/* Never started: answer at once. */
		TAILQ_REMOVE(&w->queue, u, queue);
		send_done(w, f->seq, FRAME_ST_CANCELLED, 0, NULL);
		update_free(w, u);
		return;
	}
	ctx_cancel_update(w, u);
}

/* ---- STATS: API counts and fiber dumps ------------------------------------------ */

static void send_stats(struct worker *w)
{
	json_t *j = wstats_take(w->stats);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;

	if (text != NULL && w->conn != NULL)
		send_frame(w, FRAME_STATS, FRAME_STATS_API, 0, 0, text, strlen(text));
	free(text);
	json_decref(j);
}

static void on_stats_timer(evutil_socket_t fd, short what, void *arg)
{
	send_stats(arg);
}

static void dump_json(void *arg, const struct task *t, const char *what, int64_t ms)
{
	struct tgrun_ctx *ctx = task_data((struct task *)t);
	json_t *a = arg, *o;

	if (ctx != NULL && ctx->u != NULL)
		o = json_pack("{s:I, s:s, s:s, s:I}", "update_id", (json_int_t)ctx->u->id,
		    "type", ctx->u->type, "what", what, "waited_ms", (json_int_t)ms);
	else
		o = json_pack("{s:n, s:s, s:s, s:I}", "update_id", "type", "background",
		    "what", what, "waited_ms", (json_int_t)ms);
	json_array_append_new(a, o);
}

/* DUMP: the fibers and what each waits on, for `tgrunctl fibers`. */
static void on_dump(struct worker *w, const struct frame *f)
{
	json_t *a = json_array();
	char *text;

	if (a != NULL && w->sched != NULL)
		sched_dump(w->sched, dump_json, a);
	text = a ? json_dumps(a, JSON_COMPACT) : NULL;
	send_frame(w, FRAME_STATS, FRAME_STATS_DUMP, f->seq, 0, text ? text : "[]",
	    text ? strlen(text) : 2);
	free(text);
	json_decref(a);
}

static void master_gone(struct worker *w);

static void on_conn(struct fconn *c, struct evbuffer *in, void *arg)
{
	struct worker *w = arg;
	struct frame f;
	const char *why = NULL;
	int r;

	if (in == NULL) {
		master_gone(w);
		return;
	}
	while ((r = frame_read(in, &f, &why)) == 1) {
		if (!w->configured && f.type != FRAME_CONFIG) {
			log_err("%s frame before CONFIG; exiting", frame_type_name(f.type));
			worker_exit(w, WORKER_EXIT_FAILED);
		}
		switch (f.type) {
		case FRAME_CONFIG: on_config(w, &f); break;
		case FRAME_UPDATE: on_update(w, &f); break;
		case FRAME_CANCEL: on_cancel(w, &f); break;
		case FRAME_PING:
			send_frame(w, FRAME_PONG, 0, f.seq, 0, NULL, 0);
			break;
		case FRAME_DUMP: on_dump(w, &f); break;
		case FRAME_DRAIN:
			log_debug("DRAIN: %zu updates to finish", w->updates.count);
			w->draining = 1;
			ctx_cancel_background(w);
			maybe_exit(w);
			break;
		default:
			log_err("unexpected %s frame from the master; exiting",
			    frame_type_name(f.type));
			worker_exit(w, WORKER_EXIT_FAILED);
		}
		frame_consume(in, &f);
	}
	if (r < 0) {
		log_err("protocol error from the master: %s; exiting", why);
		worker_exit(w, WORKER_EXIT_FAILED);
	}
}

/* The master's socket closed (or failed). */
static void master_gone(struct worker *w)
{
	if (orphan_begin(w)) {
		/* Its running updates finish and are recorded; then it exits. */
		fconn_stop_reading(w->conn);
		drop_queued(w);
		w->draining = 1;
		ctx_cancel_background(w);
		maybe_exit(w);
		return;
	}
	/* The master is gone: nothing to report to. */
	log_info("master closed the connection; exiting");
	_exit(w->draining ? WORKER_EXIT_OK : WORKER_EXIT_FAILED);
}

static void dump_line(void *arg, const struct task *t, const char *what, int64_t ms)
{
	struct tgrun_ctx *ctx = task_data((struct task *)t);

	if (ctx != NULL && ctx->u != NULL)
		log_notice("fiber: update %lld (%s): %s for %lld ms", (long long)ctx->u->id,
		    ctx->u->type, what, (long long)ms);
	else
		log_notice("fiber: background: %s for %lld ms", what, (long long)ms);
}

static void on_usr1(evutil_socket_t sig, short what, void *arg)
{
	struct worker *w = arg;

	log_notice("fiber dump: %d fibers, %d updates running, %zu stacks in use",
	    w->sched ? sched_count(w->sched) : 0, w->running,
	    w->pool ? fiber_pool_in_use(w->pool) : 0);
	if (w->sched)
		sched_dump(w->sched, dump_line, w);
}

static void worker_exit(struct worker *w, int status)
{
	if (status == 0 && w->configured && w->bot.h.fini != NULL)
		w->bot.h.fini(&w->bot);
	if (w->configured)
		send_stats(w);
	flush_out(w);
	exit(status);
}

/*
 * `tgrun-worker --check PATH`: load the handler and check its ABI, run
 * nothing. With a socket on fd 3 (tgrund -t), the settings come over it
 * and the handler starts as in a worker: tgrun_init, then tgrun_fini.
 */
static int check_handler(const char *path)
{
	struct handler h;
	char err[512];

	if (handler_load(&h, path, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	handler_unload(&h);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "check", required_argument, NULL, 'k' },
		{ "slot", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	static struct worker w;
	struct event *usr1, *stats_ev;
	struct timeval stats_every = { 1, 0 };
	int c, slot = -1;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			if (fcntl(FRAME_WORKER_FD, F_GETFD) < 0)
				return check_handler(optarg);
			w.check_only = 1;
			break;
		case 's': slot = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: tgrun-worker --slot N (started by tgrund)\n");
			return 2;
		}
	}
	log_init("worker", slot);
	/* Ours only: programs a handler starts must not get the master's socket. */
	if (fcntl(FRAME_WORKER_FD, F_SETFD, FD_CLOEXEC) < 0) {
		log_err("fd %d is not open: tgrun-worker is started by tgrund",
		    FRAME_WORKER_FD);
		return 2;
	}
	/*
	 * The master decides when workers stop (DRAIN over the socket); a
	 * terminal's ^C or a signal to the process group goes to it. If the
	 * master dies, PR_SET_PDEATHSIG kills the worker, or, with a done log,
	 * the worker finishes its updates first (orphan.c).
	 */
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		log_err("curl_global_init failed");
		return 1;
	}

	w.bot.w = &w;
	u64map_init(&w.updates);
	TAILQ_INIT(&w.queue);
	w.base = event_base_new();
	if (w.base == NULL)
		fatalx("event_base_new failed");
	w.conn = fconn_new(w.base, FRAME_WORKER_FD, on_conn, &w);
	usr1 = evsignal_new(w.base, SIGUSR1, on_usr1, &w);
	if (w.conn == NULL || usr1 == NULL || event_add(usr1, NULL) != 0)
		fatalx("cannot set up the master connection");
	w.stats = wstats_new();
	stats_ev = event_new(w.base, -1, EV_PERSIST, on_stats_timer, &w);
	if (w.stats == NULL || stats_ev == NULL || event_add(stats_ev, &stats_every) != 0)
		fatalx("cannot set up the stats timer");

	/*
	 * The scheduler loop: fibers are resumed here, on the main stack,
	 * never inside a libevent or libcurl callback; callbacks only queue
	 * wake-ups.
	 */
	while (!w.quit) {
		if (w.sched) {
			sched_run(w.sched);
			maybe_exit(&w);
		}
		if (w.quit)
			break;
		if (event_base_loop(w.base, w.sched && sched_pending(w.sched) ?
		    EVLOOP_NONBLOCK : EVLOOP_ONCE) < 0)
			fatalx("event_base_loop failed");
	}
	worker_exit(&w, WORKER_EXIT_OK);
}
