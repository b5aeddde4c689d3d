/* Worker processes: the pool the master forks, talks to over frames, supervises and replaces. */
#ifndef TGRUN_WORKERS_H
#define TGRUN_WORKERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct config;
struct frame;
struct master;
struct status_worker;
/* One worker slot; private to workers.c. */
struct wslot;

/*
 * What the pool tells the master. workers.c calls the master only through
 * these, never its functions.
 */
struct workers_cbs {
	/* A worker of the serving generation is READY (a start or a respawn). */
	void (*worker_ready)(struct master *m, struct wslot *w);
	/* Every worker of a reload's generation `gen` is READY, or one failed. */
	void (*generation_ready)(struct master *m, int gen);
	void (*generation_failed)(struct master *m, int gen, const char *why);
	/* A DONE frame: update `id` ended with enum frame_status `status`. */
	void (*update_done)(struct master *m, struct wslot *w, int64_t id, int status,
	    uint32_t ms);
	/* A STATS frame: API counts for the metrics, or a fiber dump. */
	void (*stats)(struct master *m, struct wslot *w, const struct frame *f);
	/* `w` takes no new update from now on (it drains, or cannot be reached). */
	void (*worker_closed)(struct master *m, struct wslot *w);
	/* Updates running in `w`, for status rows. */
	int (*inflight_of)(const struct master *m, const struct wslot *w);
	/* The worker in `w` is gone: its in-flight updates must be retried. */
	void (*worker_lost)(struct master *m, struct wslot *w);
	/* A worker of the serving generation cannot work (its config or handler). */
	void (*unusable)(struct master *m);
};

/* The callbacks the pool calls from now on. */
void workers_set_cbs(struct master *m, const struct workers_cbs *cbs);

/* Ask `w` for its fibers; it answers with a FRAME_STATS_DUMP STATS frame. */
int workers_send_dump(struct wslot *w, uint64_t req)
	__attribute__((warn_unused_result));
/* Start cfg->worker_count workers as generation `gen`. */
int workers_start(struct master *m, const struct config *cfg, int gen)
	__attribute__((warn_unused_result));
/* Tell every worker of generation `gen` to finish its work and exit. */
void workers_drain_generation(struct master *m, int gen);
/* Kill and forget every worker of generation `gen` (a failed reload). */
void workers_kill_generation(struct master *m, int gen);
/* PING every worker; kill those silent past heartbeat_timeout. */
void workers_heartbeat(struct master *m);
/* 1 when every READY worker answered a ping within heartbeat_timeout. */
int workers_healthy(const struct master *m);
int workers_send_cancel(struct wslot *w, int64_t id);
/* Drain `w` and start a fresh worker in its slot once it exits. */
void workers_recycle(struct master *m, struct wslot *w);
/* Send update `id` to a READY worker: 0, or -1 (not sent). */
int workers_send_update(struct wslot *w, int64_t id, int attempt, const char *json,
    size_t len) __attribute__((warn_unused_result));
/* The owner's pointer kept with `w` (the master's dispatch peer). */
void *workers_udata(const struct wslot *w);
void workers_set_udata(struct wslot *w, void *udata);
int workers_slot(const struct wslot *w);
/* Call `fn` for each READY worker of generation `gen`. */
void workers_foreach_ready(struct master *m, int gen,
    void (*fn)(struct master *m, struct wslot *w));
/* Status rows of up to `n` workers (returns how many); *ready: READY in the serving generation. */
size_t workers_rows(const struct master *m, struct status_worker *rows, size_t n,
    int *ready);
size_t workers_count(const struct master *m);
/* The READY worker in `slot` of the serving generation, or NULL. */
struct wslot *workers_find_ready(struct master *m, int slot, pid_t *pid);
/* `w` ignored the cancel of update `id`: kill it (logged). */
void workers_kill_one(struct wslot *w, int64_t id);
void workers_drain(struct master *m);
void workers_kill_all(struct master *m, int sig);
int workers_alive(const struct master *m);
void workers_reap(struct master *m);
void workers_free(struct master *m);
/*
 * [throttle]: make the shared buckets when `cfg` enables them and they do
 * not exist yet (start, or a reload that turns them on); they then live until
 * exit, so every generation shares them. 0, or -1 (logged).
 */
int workers_throttle_prepare(struct master *m, const struct config *cfg)
	__attribute__((warn_unused_result));
/* The generation of `cfg` serves: its [throttle] rates apply from now on. */
void workers_throttle_apply(struct master *m, const struct config *cfg);
/* Where tgrun-worker is: next to tgrund, else the libexec directory. */
char *workers_find_binary(void);

#endif
