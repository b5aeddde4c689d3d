/* The master process: state shared by the dispatcher and worker supervision. */
#ifndef TGRUN_MASTER_H
#define TGRUN_MASTER_H

#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "keys.h"
#include "notify.h"
#include "sequencer.h"
#include "u64map.h"

/* Exit statuses of tgrund. */
enum {
	EXIT_OK = 0,
	EXIT_RUNTIME = 1,
	EXIT_CONFIG = 2,	/* bad config or handler: restarting will not help */
	EXIT_TOKEN = 3,		/* the Bot API rejected the token */
};

struct upd {
	int64_t id;
	char *json;
	size_t len;
	int attempt;
	int slot;		/* worker running it, -1 if none */
	int64_t dispatched_ms;
	enum update_type type;
	struct upd *retry_next;	/* on the retry queue */
	struct seq_entry se;	/* must stay last-ish: sequencer links */
};

enum wstate { W_EMPTY, W_STARTING, W_READY, W_DRAINING };

struct wslot {
	int slot;
	enum wstate state;
	pid_t pid;
	struct bufferevent *bev;
	int inflight;
	/*
	 * A retried update runs alone in its worker, so an update that kills
	 * its worker cannot take innocent updates down with it again.
	 */
	int isolated;		/* running a retried update; gets nothing else */
	int reserved;		/* draining to become free for a retried update */
	uint64_t done, failed;
	int64_t started_ms;
	int64_t backoff_ms;	/* crash-storm backoff for the next respawn */
	struct event *respawn_ev;
	struct master *m;
};

struct master {
	struct config *cfg;
	const char *token;
	char *worker_path;
	struct event_base *base;
	struct evcurl *ec;
	struct poller *poller;
	struct seq *seq;
	struct u64map upds;		/* update id -> struct upd */
	struct upd *retry_head, *retry_tail;
	struct wslot *w;
	int nworkers;
	int nready;
	int started;			/* all workers acknowledged; polling */
	int stopping;			/* SIGTERM seen */
	int exit_status;
	int64_t next_offset;		/* 0 until the first batch */
	int pending;			/* fetched and not finished */
	int inflight;			/* sent to a worker and not finished */
	struct event *sig_term, *sig_int, *sig_hup, *sig_chld;
	struct event *stats_ev, *shutdown_ev, *watchdog_ev;
	struct notify sd;
	/* counters */
	uint64_t n_fetched, n_done, n_failed, n_retried, n_dropped;
	uint64_t n_done_last;
	int64_t last_stats_ms;
};

int64_t master_now_ms(void);
/* Run the daemon until it stops; returns the exit status. */
int master_run(struct config *cfg, const char *token);
/* Stop the loop with `status` (after workers are told or killed). */
void master_exit(struct master *m, int status);

/* daemon/master.c, called by workers.c */
void master_worker_ready(struct master *m, struct wslot *w);
void master_update_done(struct master *m, struct wslot *w, int64_t id,
    int status, uint32_t ms);
/* The worker in `w` is gone: its in-flight updates are retried. */
void master_worker_lost(struct master *m, struct wslot *w);

/* daemon/workers.c */
int workers_start(struct master *m) __attribute__((warn_unused_result));
int workers_send_update(struct master *m, struct wslot *w, struct upd *u)
	__attribute__((warn_unused_result));
void workers_drain(struct master *m);
void workers_kill_all(struct master *m, int sig);
int workers_alive(const struct master *m);
void workers_reap(struct master *m);
void workers_free(struct master *m);
/* Where tgrun-worker is: next to tgrund, else the libexec directory. */
char *workers_find_binary(void);

#endif
