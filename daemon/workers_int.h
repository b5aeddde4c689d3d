/* Private to the worker pool (workers.c, workers_spawn.c, workers_conn.c): its structs. */
#ifndef TGRUN_WORKERS_INT_H
#define TGRUN_WORKERS_INT_H

#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "fconn.h"
#include "workers.h"

enum wstate { W_EMPTY, W_STARTING, W_READY, W_DRAINING };

struct wslot {
	int slot;		/* 0..count-1 within its generation */
	int gen;
	enum wstate state;
	pid_t pid;
	struct fconn *conn;	/* the socket to the worker; NULL once closed */
	int recycling;		/* drained after max_updates; respawn when it exits */
	uint64_t done, failed;
	uint64_t recycle_at;	/* max_updates with jitter, 0 = never */
	int64_t started_ms;
	int64_t last_pong_ms;
	uint64_t ping_seq;
	int64_t backoff_ms;	/* crash-storm backoff for the next respawn */
	struct event *respawn_ev;
	void *udata;		/* the owner's (the master's dispatch peer) */
	struct workers *p;
	LIST_ENTRY(wslot) link;	/* in p->list */
};

/* The pool. */
struct workers {
	struct event_base *base;
	char *path;			/* tgrun-worker */
	const char *token;
	struct workers_cbs cbs;
	void *arg;
	LIST_HEAD(, wslot) list;	/* every generation */
	const struct config *cfg;	/* the serving generation's */
	const struct config *next_cfg;	/* the starting generation's, or NULL */
	int gen;			/* serving; 0 before the first start */
	int starting_gen;		/* started and not all READY yet; 0 if none */
	int stopping;			/* no respawn */
	uint64_t rng;
	struct throttle *throttle;	/* shared buckets, NULL until enabled */
	int done_fd;			/* the master's done log, or -1 */
};

/* workers_spawn.c */
/* fork+exec a worker into `w` and send its settings; 0, or -1 (respawn scheduled). */
int workers_spawn(struct workers *p, struct wslot *w);
void workers_schedule_respawn(struct wslot *w, int64_t ms);
void workers_on_respawn(evutil_socket_t fd, short what, void *arg);

/* workers_conn.c */
/* fconn callback: frames from `arg`'s worker, or its socket closed (`in` NULL). */
void workers_on_conn(struct fconn *c, struct evbuffer *in, void *arg);
/* Queue a frame to `w` (written at the end of this loop turn): 0, or -1. */
int workers_send_frame(struct wslot *w, uint8_t type, uint16_t flags, uint64_t seq,
    uint32_t arg, const void *payload, size_t len);
/* Log, close the socket and kill the worker. */
void workers_protocol_error(struct wslot *w, const char *why);
/* Close `w`'s socket (the process is reaped on SIGCHLD). */
void workers_drop_conn(struct wslot *w);
/* Handle what the socket still holds from a worker that exited. */
void workers_read_last_frames(struct wslot *w);

#endif
