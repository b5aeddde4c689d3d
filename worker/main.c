/* tgrun-worker: runs the handler for updates the master sends over fd 3. */
#include "frame.h"
#include "handler.h"
#include "log.h"
#include "tgrun.h"
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

/* An update received and not yet run. */
struct job {
	struct job *next;
	uint64_t id;
	uint32_t attempt;
	int cancelled;
	char *json;
	size_t len;
};

struct worker {
	struct event_base *base;
	struct bufferevent *bev;
	struct event *run_ev;
	struct tgrun_bot bot;
	int configured;
	int draining;
	struct job *head, *tail;
	struct job *current;
};

static void worker_exit(struct worker *w, int status);

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void send_frame(struct worker *w, uint8_t type, uint16_t flags,
    uint64_t seq, uint32_t arg, const void *p, size_t len)
{
	if (frame_write(bufferevent_get_output(w->bev), type, flags, seq, arg,
	    p, len) != 0) {
		log_err("cannot queue a %s frame; exiting", frame_type_name(type));
		exit(1);
	}
}

/* Write out what is queued, blocking: used only just before exit. */
static void flush_out(struct worker *w)
{
	struct evbuffer *out = bufferevent_get_output(w->bev);
	int fd = FRAME_WORKER_FD;
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	while (evbuffer_get_length(out) > 0)
		if (evbuffer_write(out, fd) <= 0 && errno != EINTR)
			break;
}

static void fail_start(struct worker *w, enum frame_fail why, const char *msg)
{
	log_err("%s", msg);
	send_frame(w, FRAME_FAIL, (uint16_t)why, 0, 0, msg, strlen(msg));
	worker_exit(w, 2);
}

static void on_config(struct worker *w, const struct frame *f)
{
	char err[512];
	json_error_t je;
	json_t *j;
	char ready[64];
	int n;

	if (w->configured) {
		log_warn("second CONFIG frame ignored");
		return;
	}
	j = json_loadb(f->payload, f->len, 0, &je);
	if (j == NULL || settings_from_json(&w->bot.set, j, err, sizeof(err)) != 0) {
		json_decref(j);
		fail_start(w, FRAME_FAIL_CONFIG, j ? err : "CONFIG frame is not JSON");
		return;
	}
	json_decref(j);
	log_add_secret(w->bot.set.token);
	log_init("worker", w->bot.set.slot);
	if (botapi_req_init(&w->bot.api) != 0)
		fail_start(w, FRAME_FAIL_CONFIG, "curl_easy_init failed");
	if (handler_load(&w->bot.h, w->bot.set.handler_path, err, sizeof(err)) != 0) {
		fail_start(w, FRAME_FAIL_LOAD, err);
		return;
	}
	if (w->bot.h.init != NULL && w->bot.h.init(&w->bot) != 0) {
		snprintf(err, sizeof(err), "handler %s: tgrun_init failed",
		    w->bot.set.handler_path);
		fail_start(w, FRAME_FAIL_INIT, err);
		return;
	}
	w->configured = 1;
	n = snprintf(ready, sizeof(ready), "{\"pid\":%ld}", (long)getpid());
	send_frame(w, FRAME_READY, 0, 0, 0, ready, (size_t)n);
	log_debug("ready (handler %s)", w->bot.set.handler_path);
}

static void free_job(struct job *j)
{
	free(j->json);
	free(j);
}

static void run_one(struct worker *w, struct job *jb)
{
	struct tgrun_ctx ctx = { .bot = &w->bot, .update_id = (int64_t)jb->id,
	    .attempt = (int)jb->attempt };
	json_error_t je;
	int64_t t0 = now_ms();
	uint16_t st;

	if (jb->cancelled) {
		send_frame(w, FRAME_DONE, FRAME_ST_CANCELLED, jb->id, 0, NULL, 0);
		return;
	}
	ctx.update = json_loadb(jb->json, jb->len, 0, &je);
	if (ctx.update == NULL || !json_is_object(ctx.update)) {
		log_warn("update %llu: not a JSON object: %s",
		    (unsigned long long)jb->id, je.text);
		json_decref(ctx.update);
		send_frame(w, FRAME_DONE, FRAME_ST_ERROR, jb->id, 0, NULL, 0);
		return;
	}
	ctx_describe(&ctx);
	w->current = jb;
	st = w->bot.h.handle(&ctx, ctx.update) == 0 ? FRAME_ST_OK : FRAME_ST_ERROR;
	w->current = NULL;
	if (st != FRAME_ST_OK)
		log_info("update %llu (%s, attempt %u): handler failed",
		    (unsigned long long)jb->id, ctx.type, jb->attempt);
	json_decref(ctx.update);
	send_frame(w, FRAME_DONE, st, jb->id, (uint32_t)(now_ms() - t0), NULL, 0);
}

/* Runs from the loop, never inside the read callback: one update per turn. */
static void on_run(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct job *jb = w->head;

	if (jb != NULL) {
		w->head = jb->next;
		if (w->head == NULL)
			w->tail = NULL;
		run_one(w, jb);
		free_job(jb);
	}
	if (w->head != NULL)
		event_active(w->run_ev, 0, 0);
	else if (w->draining)
		worker_exit(w, 0);
}

static void on_update(struct worker *w, const struct frame *f)
{
	struct job *jb = calloc(1, sizeof(*jb));

	if (jb == NULL || (jb->json = malloc(f->len ? f->len : 1)) == NULL) {
		log_err("out of memory for update %llu", (unsigned long long)f->seq);
		exit(1);
	}
	memcpy(jb->json, f->payload, f->len);
	jb->len = f->len;
	jb->id = f->seq;
	jb->attempt = f->arg;
	if (w->tail)
		w->tail->next = jb;
	else
		w->head = jb;
	w->tail = jb;
	event_active(w->run_ev, 0, 0);
}

static void on_cancel(struct worker *w, const struct frame *f)
{
	for (struct job *jb = w->head; jb; jb = jb->next)
		if (jb->id == f->seq)
			jb->cancelled = 1;
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct worker *w = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct frame f;
	const char *why = NULL;
	int r;

	while ((r = frame_read(in, &f, &why)) == 1) {
		if (!w->configured && f.type != FRAME_CONFIG) {
			log_err("%s frame before CONFIG; exiting", frame_type_name(f.type));
			worker_exit(w, 1);
		}
		switch (f.type) {
		case FRAME_CONFIG: on_config(w, &f); break;
		case FRAME_UPDATE: on_update(w, &f); break;
		case FRAME_CANCEL: on_cancel(w, &f); break;
		case FRAME_PING:
			send_frame(w, FRAME_PONG, 0, f.seq, 0, NULL, 0);
			break;
		case FRAME_DRAIN:
			w->draining = 1;
			event_active(w->run_ev, 0, 0);
			break;
		default:
			log_err("unexpected %s frame from the master; exiting",
			    frame_type_name(f.type));
			worker_exit(w, 1);
		}
		frame_consume(in, &f);
	}
	if (r < 0) {
		log_err("protocol error from the master: %s; exiting", why);
		worker_exit(w, 1);
	}
}

static void on_sock_event(struct bufferevent *bev, short what, void *arg)
{
	struct worker *w = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		/* The master is gone: nothing to report to. */
		log_info("master closed the connection; exiting");
		exit(w->draining ? 0 : 1);
	}
}

static void worker_exit(struct worker *w, int status)
{
	if (status == 0 && w->configured && w->bot.h.fini != NULL)
		w->bot.h.fini(&w->bot);
	flush_out(w);
	exit(status);
}

/* `tgrun-worker --check PATH`: load the handler and check its ABI, run nothing. */
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
	struct worker w;
	int c, slot = -1;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'k': return check_handler(optarg);
		case 's': slot = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: tgrun-worker --slot N (started by tgrund)\n");
			return 2;
		}
	}
	log_init("worker", slot);
	if (fcntl(FRAME_WORKER_FD, F_GETFD) < 0) {
		log_err("fd %d is not open: tgrun-worker is started by tgrund",
		    FRAME_WORKER_FD);
		return 2;
	}
	/*
	 * The master decides when workers stop (DRAIN over the socket); a
	 * terminal's ^C or a signal to the process group goes to it. If the
	 * master dies, PR_SET_PDEATHSIG kills the worker.
	 */
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		log_err("curl_global_init failed");
		return 1;
	}

	memset(&w, 0, sizeof(w));
	w.base = event_base_new();
	if (w.base == NULL)
		fatalx("event_base_new failed");
	evutil_make_socket_nonblocking(FRAME_WORKER_FD);
	w.bev = bufferevent_socket_new(w.base, FRAME_WORKER_FD, 0);
	w.run_ev = event_new(w.base, -1, 0, on_run, &w);
	if (w.bev == NULL || w.run_ev == NULL)
		fatalx("cannot set up the master connection");
	bufferevent_setcb(w.bev, on_read, NULL, on_sock_event, &w);
	bufferevent_enable(w.bev, EV_READ | EV_WRITE);
	event_base_dispatch(w.base);
	return 1;
}
