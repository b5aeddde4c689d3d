/* A worker's socket: frames in (READY, DONE, PONG, STATS, FAIL) and out (UPDATE, CANCEL, DUMP). */
#include "workers_int.h"
#include "clock.h"
#include "frame.h"
#include "log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/buffer.h>

void workers_drop_conn(struct wslot *w)
{
	if (w->conn != NULL && w->state == W_READY)
		w->p->cbs.worker_closed(w->p->arg, w);	/* nothing can reach it now */
	if (w->conn != NULL) {
		fconn_free(w->conn);
		w->conn = NULL;
	}
}

void workers_protocol_error(struct wslot *w, const char *why)
{
	log_err("worker %d (pid %ld): protocol error: %s; killing it", w->slot,
	    (long)w->pid, why);
	workers_drop_conn(w);
	if (w->pid > 0)
		kill(w->pid, SIGKILL);
}

static void on_fail_frame(struct workers *p, struct wslot *w, const struct frame *f)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "%.*s", (int)(f->len < 400 ? f->len : 400), f->payload);
	log_err("worker %d: start-up failed: %s", w->slot, msg);
	if (w->gen != p->gen) {
		if (w->gen == p->starting_gen)
			p->cbs.generation_failed(p->arg, w->gen, msg);
		return;
	}
	/* A handler that will not load or init will not after a restart either. */
	p->cbs.unusable(p->arg);
}

static void on_ready(struct workers *p, struct wslot *w)
{
	w->state = W_READY;
	w->last_pong_ms = clock_ms();
	if (w->gen == p->gen)
		p->cbs.worker_ready(p->arg, w);
	if (w->gen == p->starting_gen) {
		int all = 1;

		for (struct wslot *x = LIST_FIRST(&p->list); x; x = LIST_NEXT(x, link))
			if (x->gen == w->gen && x->state != W_READY)
				all = 0;
		if (all) {
			p->starting_gen = 0;
			p->cbs.generation_ready(p->arg, w->gen);
		}
	}
}

static void handle_frames(struct wslot *w, struct evbuffer *in)
{
	struct workers *p = w->p;
	const char *why = NULL;
	struct frame f;
	int r = 0;

	while (w->conn != NULL && (r = frame_read(in, &f, &why)) == 1) {
		switch (f.type) {
		case FRAME_READY:
			if (w->state != W_STARTING) {
				workers_protocol_error(w, "READY twice");
				return;
			}
			frame_consume(in, &f);
			on_ready(p, w);
			continue;
		case FRAME_DONE:
			if (w->state != W_READY && w->state != W_DRAINING) {
				workers_protocol_error(w, "DONE before READY");
				return;
			}
			if (f.len > FRAME_DONE_ERR_MAX) {
				workers_protocol_error(w, "DONE with an error text too long");
				return;
			}
			if (f.flags == FRAME_ST_OK)
				w->done++;
			else
				w->failed++;
			/* Drain it before the master can give it more work. */
			if (w->recycle_at && w->done + w->failed >= w->recycle_at &&
			    !w->recycling && !p->stopping && w->state == W_READY)
				workers_recycle(w);
			p->cbs.update_done(p->arg, w, (int64_t)f.seq, f.flags, f.arg,
			    f.payload, f.len);
			break;
		case FRAME_FAIL:
			on_fail_frame(p, w, &f);
			return;
		case FRAME_PONG:
			w->last_pong_ms = clock_ms();
			break;
		case FRAME_STATS:
			p->cbs.stats(p->arg, w, &f);
			break;
		default:
			workers_protocol_error(w, "unexpected frame type from a worker");
			return;
		}
		if (w->conn != NULL)
			frame_consume(in, &f);
	}
	if (w->conn != NULL && r < 0)
		workers_protocol_error(w, why);
}

void workers_on_conn(struct fconn *c, struct evbuffer *in, void *arg)
{
	struct wslot *w = arg;

	if (in == NULL) {
		/* The process is reaped on SIGCHLD; only the socket goes now. */
		workers_drop_conn(w);
		return;
	}
	handle_frames(w, in);
}

int workers_send_frame(struct wslot *w, uint8_t type, uint16_t flags, uint64_t seq,
    uint32_t arg, const void *payload, size_t len)
{
	if (w->conn == NULL ||
	    frame_write(fconn_output(w->conn), type, flags, seq, arg, payload, len) != 0)
		return -1;
	fconn_kick(w->conn);
	return 0;
}

int workers_send_update(struct wslot *w, int64_t id, int attempt, const char *json,
    size_t len)
{
	if (w->conn == NULL || w->state != W_READY)
		return -1;
	return workers_send_frame(w, FRAME_UPDATE, 0,
	    (uint64_t)id, (uint32_t)attempt, json, len);
}

int workers_send_cancel(struct wslot *w, int64_t id)
{
	if (w->conn == NULL)
		return -1;
	return workers_send_frame(w, FRAME_CANCEL, 0,
	    (uint64_t)id, 0, NULL, 0);
}

int workers_send_dump(struct wslot *w, uint64_t req)
{
	if (w->conn == NULL || (w->state != W_READY && w->state != W_DRAINING))
		return -1;
	return workers_send_frame(w, FRAME_DUMP, 0, req, 0,
	    NULL, 0);
}

/*
 * SIGCHLD may be seen before the socket's last bytes: read and handle them
 * first, or DONE frames of a worker that exited cleanly would be lost and
 * its finished updates retried.
 */
void workers_read_last_frames(struct wslot *w)
{
	if (w->conn == NULL)
		return;
	(void)fconn_drain_socket(w->conn);
	handle_frames(w, fconn_input(w->conn));
}
