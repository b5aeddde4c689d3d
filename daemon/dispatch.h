/* Dispatch: which worker runs which update (least loaded first, retries alone, timeouts). */
#ifndef TGRUN_DISPATCH_H
#define TGRUN_DISPATCH_H

#include <stdint.h>
#include <sys/queue.h>

struct dispatch;
/* One place updates run (a worker process), as the dispatcher sees it. */
struct dsp_peer;

/*
 * What the dispatcher tracks of an update: the caller embeds it in its own
 * record and sets `id` before handing it over; the rest is the dispatcher's.
 */
struct dsp_entry {
	int64_t id;
	/* private to the dispatcher */
	struct dsp_peer *peer;		/* running there; NULL when not running */
	int queued;			/* on the retry queue */
	int alone;			/* the retry runs alone on an idle peer */
	int64_t not_before_ms;		/* the retry waits until then */
	TAILQ_ENTRY(dsp_entry) link;	/* in the peer's in-flight list or the queue */
	int64_t dispatched_ms;		/* last sent; 0 before the first send */
	int64_t cancel_sent_ms;		/* update_timeout: cancel asked; 0 if not */
};

/*
 * How the dispatcher reaches its owner and the peers. `arg` is passed to
 * each; `h` is the handle given to dispatch_peer_add().
 */
struct dispatch_cbs {
	void *arg;
	/* The next update the sequencer lets run, or NULL. */
	struct dsp_entry *(*next)(void *arg);
	/* Send `e` to `h`: 0, or -1 (it stays the dispatcher's, queued to retry). */
	int (*send)(void *arg, void *h, struct dsp_entry *e);
	/* Ask `h` to cancel update `id`: 0, or -1 (then `h` is killed). */
	int (*cancel)(void *arg, void *h, int64_t id);
	/* `h` did not end a cancelled update within the grace: end it by force. */
	void (*kill)(void *arg, void *h, int64_t id);
};

struct dispatch_limits {
	int per_peer;			/* updates in flight per peer */
	int total;			/* updates in flight in all */
	int64_t timeout_ms;		/* then the update is cancelled */
	int64_t grace_ms;		/* then its peer is killed */
};

struct dispatch *dispatch_new(const struct dispatch_cbs *cbs,
    const struct dispatch_limits *lim);
void dispatch_free(struct dispatch *d);
void dispatch_set_limits(struct dispatch *d, const struct dispatch_limits *lim);

/* A peer that takes updates from now on; NULL when out of memory. */
struct dsp_peer *dispatch_peer_add(struct dispatch *d, void *h);
/* `p` gets no new update (it drains); its running ones go on. */
void dispatch_peer_close(struct dispatch *d, struct dsp_peer *p);
/*
 * `p` is gone. Each update running there is handed to `lost` (with 1 when it
 * had been cancelled for its timeout) and is no longer the dispatcher's;
 * then `p` is freed. `lost` may call dispatch_retry().
 */
void dispatch_peer_remove(struct dispatch *d, struct dsp_peer *p,
    void (*lost)(void *arg, struct dsp_entry *e, int timed_out), void *arg);
int dispatch_peer_inflight(const struct dsp_peer *p);

/* Send what may run now, within the limits. */
void dispatch_run(struct dispatch *d);
/*
 * Queue `e` to run again, not before `not_before_ms` (clock_ms()). With
 * `alone` it runs alone on an idle peer, so an update that kills its worker
 * cannot take other updates down with it again; else on the least loaded.
 * Retries go first, in the order queued, once due (dispatch_run).
 */
void dispatch_retry(struct dispatch *d, struct dsp_entry *e, int64_t not_before_ms,
    int alone);
/* 1 when a queued retry is due at `now_ms`. */
int dispatch_retry_due(const struct dispatch *d, int64_t now_ms);
/*
 * `e` ended on `p` (the peer said so). Returns 1 when it was cancelled for
 * its timeout, 0 otherwise, -1 when it was not running on `p` (ignored).
 */
int dispatch_done(struct dispatch *d, struct dsp_peer *p, struct dsp_entry *e);
/* `e` leaves the dispatcher without running (e.g. dropped from the queue). */
void dispatch_forget(struct dispatch *d, struct dsp_entry *e);
/* Timeouts: cancel what ran too long, kill peers that ignore a cancel. */
void dispatch_tick(struct dispatch *d, int64_t now_ms);
/*
 * The caller did not run for `ms` (stopped, or starved of CPU): what runs
 * gets that time back. Its updates may not even have reached their peer
 * (still in the caller's buffers), and nothing could be cancelled meanwhile.
 */
void dispatch_stalled(struct dispatch *d, int64_t ms);
/* Ask for every running update to be cancelled (a stop's timeout). */
void dispatch_cancel_all(struct dispatch *d);

struct dispatch_counts {
	int inflight;		/* running on peers */
	int queued;		/* waiting to be retried */
	uint64_t timeouts;	/* cancelled for update_timeout, ever */
};
struct dispatch_counts dispatch_counts(const struct dispatch *d);

#endif
