/* Worker processes: the pool the master forks, talks to over frames, supervises and replaces. */
#ifndef TGRUN_WORKERS_H
#define TGRUN_WORKERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct config;
struct event_base;
struct frame;
struct status_worker;
/* The pool; private to workers.c. */
struct workers;
/* One worker slot; private to workers.c. */
struct wslot;

/*
 * What the pool tells its owner; `arg` is the one given to workers_new().
 * The pool reaches its owner only through these.
 */
struct workers_cbs {
	/* A worker of the serving generation is READY (a start or a respawn). */
	void (*worker_ready)(void *arg, struct wslot *w);
	/* Every worker of generation `gen` is READY for the first time, or one failed. */
	void (*generation_ready)(void *arg, int gen);
	void (*generation_failed)(void *arg, int gen, const char *why);
	/*
	 * A DONE frame: update `id` ended with enum frame_status `status`; `why`
	 * (`whylen` bytes, not terminated, outside text) is why it failed.
	 */
	void (*update_done)(void *arg, struct wslot *w, int64_t id, int status,
	    uint32_t ms, const char *why, size_t whylen);
	/* A STATS frame: API counts for the metrics, or a fiber dump. */
	void (*stats)(void *arg, struct wslot *w, const struct frame *f);
	/* `w` takes no new update from now on (it drains, or cannot be reached). */
	void (*worker_closed)(void *arg, struct wslot *w);
	/* Updates running in `w`, for status rows. */
	int (*inflight_of)(void *arg, const struct wslot *w);
	/* The worker in `w` is gone: what ran there must be retried. */
	void (*worker_lost)(void *arg, struct wslot *w);
	/* A worker of the serving generation cannot work (its config or handler). */
	void (*unusable)(void *arg);
};

/*
 * A pool with no worker yet; finds tgrun-worker next to tgrund, else in the
 * libexec directory. NULL (logged) when it is not there or out of memory.
 */
struct workers *workers_new(struct event_base *base, const char *token,
    const struct workers_cbs *cbs, void *arg);
/* Where tgrun-worker is: next to tgrund, else the libexec directory (malloc'd). */
char *workers_find_binary(void);
/*
 * The settings a worker gets in its CONFIG frame (a new reference, NULL
 * when out of memory): `cfg` as worker `slot` of generation `gen`, with
 * the throttle's memory and the done log handed over or not.
 */
struct json_t;
struct json_t *workers_settings(const struct config *cfg, int slot, int gen,
    const char *token, int throttle, int done_log);
/* Kills nothing: call after the workers are gone (workers_alive() == 0). */
void workers_free(struct workers *p);

/*
 * Start cfg->worker_count workers as generation `gen`, with `cfg` (kept
 * until the generation ends). The first generation serves at once; a later
 * one serves from workers_serve().
 */
int workers_start(struct workers *p, const struct config *cfg, int gen)
	__attribute__((warn_unused_result));
/* Generation `gen` serves from now on with `cfg`; the one before drains. */
void workers_serve(struct workers *p, int gen, const struct config *cfg);
/* Kill and forget generation `gen` (a reload that failed). */
void workers_abandon(struct workers *p, int gen);
/* Stopping: no worker is respawned from now on. */
void workers_set_stopping(struct workers *p);
/*
 * Workers started from now on inherit `fd`, the done log (donelog.h), and
 * when the master dies they finish their running updates and record them
 * there before they exit (within workers_orphan_limit_ms). Without it (-1,
 * no journal) they die with the master. The pool does not close `fd`.
 */
void workers_set_done_log(struct workers *p, int fd);
/* How long a worker with `cfg` may outlive its master, in ms. */
int64_t workers_orphan_limit_ms(const struct config *cfg);

/* Send update `id` to a READY worker: 0, or -1 (not sent). */
int workers_send_update(struct wslot *w, int64_t id, int attempt, const char *json,
    size_t len) __attribute__((warn_unused_result));
int workers_send_cancel(struct wslot *w, int64_t id);
/* Ask `w` for its fibers; it answers with a FRAME_STATS_DUMP STATS frame. */
int workers_send_dump(struct wslot *w, uint64_t req)
	__attribute__((warn_unused_result));
/* `w` ignored the cancel of update `id`: kill it (logged). */
void workers_kill_one(struct wslot *w, int64_t id);
/* Drain `w` and start a fresh worker in its slot once it exits. */
void workers_recycle(struct wslot *w);

/* The owner's pointer kept with `w` (the master's dispatch peer). */
void *workers_udata(const struct wslot *w);
void workers_set_udata(struct wslot *w, void *udata);
int workers_slot(const struct wslot *w);
/* Call `fn(arg, w)` for each READY worker of generation `gen`. */
void workers_foreach_ready(struct workers *p, int gen,
    void (*fn)(void *arg, struct wslot *w));
/*
 * Status rows of up to `n` workers (returns how many); *ready: READY
 * workers of the serving generation.
 */
size_t workers_rows(const struct workers *p, struct status_worker *rows, size_t n,
    int *ready);
size_t workers_count(const struct workers *p);
/* The READY worker in `slot` of the serving generation (and its pid), or NULL. */
struct wslot *workers_find_ready(struct workers *p, int slot, pid_t *pid);

/* PING every worker; kill those silent past heartbeat_timeout. */
void workers_heartbeat(struct workers *p);
/*
 * 1 when every READY worker answered a ping within half of heartbeat_timeout
 * (pings go every quarter): the systemd watchdog pauses before the kill.
 */
int workers_healthy(const struct workers *p);
/* Tell every worker to finish its work and exit. */
void workers_drain(struct workers *p);
void workers_kill_all(struct workers *p, int sig);
int workers_alive(const struct workers *p);
/* Reap exited workers (SIGCHLD): respawn, or report the generation's failure. */
void workers_reap(struct workers *p);
/*
 * [throttle]: make the shared buckets when `cfg` enables them and they do
 * not exist yet (start, or a reload that turns them on); they then live until
 * exit, so every generation shares them. 0, or -1 (logged).
 */
int workers_throttle_prepare(struct workers *p, const struct config *cfg)
	__attribute__((warn_unused_result));
/* The generation of `cfg` serves: its [throttle] rates apply from now on. */
void workers_throttle_apply(struct workers *p, const struct config *cfg);

#endif
