/* The master process: state shared by the dispatcher and worker supervision. */
#ifndef TGRUN_MASTER_H
#define TGRUN_MASTER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/util.h>

#include "config.h"
#include "notify.h"
#include "pending.h"
#include "workers.h"

/* Exit statuses of tgrund. */
enum {
	EXIT_OK = 0,
	EXIT_RUNTIME = 1,
	EXIT_CONFIG = 2,	/* bad config or handler: restarting will not help */
	EXIT_TOKEN = 3,		/* the Bot API rejected the token */
};

struct control;
struct dispatch;
struct metrics;
struct frame;
struct pending;
struct mcluster;

struct master {
	struct config *cfg;
	struct config *next_cfg;	/* a reload waiting for its workers */
	const char *token;
	struct event_base *base;
	struct evcurl *ec;
	struct poller *poller;
	struct store *store;		/* the journal; NULL when [journal] enabled = no */
	struct pending *pend;		/* fetched and not finished */
	struct dispatch *dsp;		/* who runs what */
	struct workers *pool;		/* the worker processes, every generation */
	int gen;			/* generation receiving new updates */
	int reload_gen;			/* the generation a reload starts */
	int started;			/* all workers acknowledged; polling */
	int stopping;			/* SIGTERM seen */
	int reloading;			/* a new generation is starting */
	int reload_queued;		/* SIGHUP during a reload */
	int journal_blocked;		/* a batch could not be written: polling paused */
	int exit_status;
	int stop_cancelled;		/* shutdown_timeout: CANCELs sent */
	int64_t last_ping_ms;		/* heartbeats sent */
	int64_t next_offset;		/* 0 until the first batch */
	struct event *sig_term, *sig_int, *sig_hup, *sig_chld;
	struct event *stats_ev, *shutdown_ev, *watchdog_ev, *tick_ev;
	int64_t last_tick_ms;		/* on_tick's last run: a stalled loop shows */
	struct event *journal_ev;	/* completion flush / blocked-batch retry */
	struct event *drain_ev;		/* bounds the wait for workers after DRAIN */
	struct event *turn_ev;		/* end of a loop turn that saw DONE frames */
	/* The done log (donelog.h), -1 without a journal; ids not written yet. */
	int done_fd;
	int64_t *done_ids;
	size_t ndone_ids, done_cap;
	int done_log_failing;		/* a write failed: logged once until one works */
	struct notify sd;
	/* counters */
	uint64_t n_fetched, n_done, n_failed, n_retried, n_dead;
	uint64_t n_done_last;
	uint64_t retry_rng;		/* jitter of retry delays */
	int64_t last_stats_ms;
	int64_t last_poll_ok_ms;
	double rate;			/* updates/s over the last stats interval */
	int paused;			/* polling paused by `tgrunctl pause` */
	struct control *control;	/* NULL when [control] enabled = no */
	struct metrics *metrics;
	struct status_buf *status_buf;	/* what the last snapshot points into */
	struct mcluster *mc;		/* cluster mode (master_cluster.h); NULL: single machine */
};

/* How long stopped workers get to exit after DRAIN before they are killed. */
#define DRAIN_GRACE_MS 5000

/* Run the daemon until it stops; returns the exit status. Takes over cfg. */
int master_run(struct config *cfg, const char *token);
/* Stop the loop with `status` (after workers are told or killed). */
void master_exit(struct master *m, int status);

/* daemon/master.c, for the control socket */
/* Same as SIGHUP: 0 started, 1 queued behind a running reload, -1 stopping. */
int master_request_reload(struct master *m);
/* Pause (1) or resume (0) polling; in-flight and pending work goes on. */
void master_set_paused(struct master *m, int paused);
/*
 * Take journaled updates that are not pending (dead letters just moved back
 * by store_dead_retry) into the pending set and dispatch them. Returns how
 * many were added, or -1 (journal error, logged).
 */
int master_take_journaled(struct master *m);
/* "polling", "paused (control)", "paused (journal)", ... for status lines. */
const char *master_polling_state(const struct master *m);

/* Inside the master (master.c), for its other files. */
/* Record the update `json` (copied) as pending; NULL when it is not new. */
struct upd *master_add_update(struct master *m, const char *json, size_t len,
    int attempt, int valid);
/*
 * Why no worker could run `u` (its id or size), or NULL. Such an update is
 * still journaled, then dead-lettered when its turn comes.
 */
const char *master_refusal(const struct upd *u);
/* The offset that confirms `id`: id + 1, saturated at INT64_MAX. */
int64_t master_offset_after(int64_t id);
/* Updates fetched and not finished; updates running in workers. */
int master_pending(const struct master *m);
int master_inflight(const struct master *m);
/* `u` is finished: released from the set (and the journal when asked). */
void master_finish(struct master *m, struct upd *u, int journal_done_too);
/* Ask for the next batch if nothing stops polling. */
void master_maybe_poll(struct master *m);

/* daemon/master_work.c: the dispatcher's side and what workers report. */
extern const struct workers_cbs master_worker_cbs;
struct dispatch *master_dispatch_new(struct master *m);
/* m->cfg's ordering rules and limits apply from now on (start, reload). */
void master_apply_config(struct master *m);
/* A READY worker of the serving generation takes updates from now on. */
void master_add_peer(void *arg, struct wslot *w);
/* `u` to the dead letters (or dropped, logged); `ran`: it failed every attempt. */
void master_dead_letter(struct master *m, struct upd *u, int ran, const char *why);
/* The longest delay between two attempts of an update (above a larger retry_delay). */
#define RETRY_DELAY_CAP_MS (5 * 60 * 1000)
/* Why an attempt failed, from its DONE frame's status and text (escaped), in `out`. */
void master_failure_text(char *out, size_t size, int status, const char *why,
    size_t whylen);
/* Send runnable updates to workers, within the limits. */
void master_dispatch(struct master *m);
/* turn_ev: completions of this loop turn to the done log, then dispatch and poll. */
void master_on_turn(evutil_socket_t fd, short what, void *arg);

/* daemon/master_life.c: stop and reload. */
void master_on_stop_signal(evutil_socket_t sig, short what, void *arg);
void master_on_hup(evutil_socket_t sig, short what, void *arg);
/* The poller confirmed the offset at stop: drain the workers, then exit. */
void master_on_confirmed(void *arg, int ok);
/* Nothing runs any more: confirm the offset, then drain. */
void master_begin_confirm(struct master *m);
void master_generation_ready(void *arg, int gen);
void master_generation_failed(void *arg, int gen, const char *why);

/* daemon/master_store.c: persistence through store.h. */
/*
 * Open the journal (unless [journal] enabled = no) and its done log, wait
 * (bounded) until no worker of an earlier master runs, mark done what the
 * done log says finished, and replay the unfinished updates into the pending
 * set. 0, or -1 (logged) with m->exit_status set.
 */
int master_store_open(struct master *m) __attribute__((warn_unused_result));
/*
 * Replay the store's unfinished updates into the pending set and take its
 * offset (start; a new cluster leader). 0, or -1 (logged).
 */
int master_store_replay(struct master *m) __attribute__((warn_unused_result));
/* A batch could not be stored: polling pauses and the write is retried. */
void master_store_blocked(struct master *m);
/*
 * Update `id` is done: queue its completion (flushed to the journal in
 * batches) and keep it for the done log (master_store_record).
 */
void master_store_done(struct master *m, int64_t id);
/*
 * Write the completions kept since the last call to the done log, in one
 * write(). Called once per loop turn that saw DONE frames, and before any
 * update is sent to a worker: a successor never runs before its
 * predecessor's completion survives a kill of the master.
 */
void master_store_record(struct master *m);
/* Flush completions, close the journal and the done log (after the workers exited). */
void master_store_close(struct master *m);

/* daemon/master_status.c: status.h's ops for the control socket and metrics. */
struct status_ops;
int master_status_ops(struct master *m, struct status_ops *ops)
	__attribute__((warn_unused_result));
void master_status_free(struct master *m);

#endif
