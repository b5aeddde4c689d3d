/* A worker process: settings from the master, the handler, updates and their fibers. */
#ifndef TGRUN_WORKER_H
#define TGRUN_WORKER_H

#include <stdint.h>
#include <sys/queue.h>
#include <jansson.h>

#include "botapi.h"
#include "handler.h"
#include "sched.h"
#include "tgrun.h"
#include "u64map.h"

struct event_base;
struct fconn;
struct evcurl;
struct fiber_pool;
struct wstats;
struct sched;
struct task;
struct lock;
struct tgrun_fiber;

LIST_HEAD(lock_list, lock);
LIST_HEAD(ctx_list, tgrun_ctx);
SLIST_HEAD(handle_list, tgrun_fiber);

/* Settings the master sends in the CONFIG frame. */
struct worker_settings {
	int slot, count, generation;
	char *handler_path;
	char *api_url;
	char *token;
	long api_timeout_ms;
	int api_retries;
	long retry_after_max_ms;
	int worker_concurrency;
	long stack_size;
	int log_level;		/* enum log_level; 0 = leave as is */
	int throttle;		/* [throttle] on: the buckets are on THROTTLE_FD */
	json_t *handler_kv;	/* object of [handler] keys */
	int retry_ambiguous;	/* [api] retry_ambiguous */
	char *ca_file, *ca_path, *proxy;	/* [api], NULL when unset */
	struct botapi_net net;	/* the above, as every Bot API request uses them */
};

struct tgrun_bot {
	struct worker *w;
	struct worker_settings set;
	struct handler h;
};

/* One update in this worker. */
struct wupdate {
	struct tgrun_bot *w_bot;
	int64_t id;
	int attempt;
	json_t *update;
	const char *type;
	int64_t chat_id, user_id;
	int cancelled;
	int live_children;		/* attached children not finished */
	struct task *main;		/* parked waiting for children, or NULL */
	int main_waiting;
	struct ctx_list ctxs;		/* main and attached children, alive */
	struct handle_list handles;	/* released when the update ends */
	int status;			/* enum frame_status */
	char *err;			/* why it failed (ctx_update_error), or NULL */
	int err_explicit;		/* `err` came from tgrun_fail() */
	int no_retry;			/* tgrun_no_retry(): a failure is final */
	int64_t t0;
	int waiting;			/* in the worker's queue, not started */
	TAILQ_ENTRY(wupdate) queue;
};

TAILQ_HEAD(wupdate_queue, wupdate);

struct tgrun_ctx {
	struct tgrun_bot *bot;
	struct wupdate *u;		/* NULL for background fibers */
	struct task *task;
	LIST_ENTRY(tgrun_ctx) link;	/* in u->ctxs or the worker's background list */
	struct lock_list locks;		/* tgrun_lock()s held by this fiber */
};

struct worker {
	struct event_base *base;
	struct fconn *conn;		/* to the master */
	struct fiber_pool *pool;
	struct sched *sched;
	struct evcurl *ec;		/* Bot API calls, uploads, downloads */
	struct evcurl *ec_http;		/* tgrun_http: other servers */
	struct tgrun_bot bot;
	int configured, draining, quit, exit_status;
	int check_only;			/* tgrund -t: start the handler, then exit */
	struct u64map updates;		/* id -> struct wupdate, running or queued */
	int running;			/* updates whose fibers run */
	struct wupdate_queue queue;	/* over worker_concurrency: waiting */
	struct ctx_list background;	/* detached and periodic fibers */
	struct botapi_req *req_free[64];	/* idle easy handles (keep-alive) */
	int nreq_free;
	struct lockmap *locks;
	struct throttle *throttle;	/* [throttle] buckets shared with all workers, or NULL */
	struct wstats *stats;		/* Bot API counts for the next STATS frame */
	struct orphan *orphan;		/* the done log is ours (orphan.c), or NULL */
	int orphaned;			/* the master is gone: no frame goes out */
};

int settings_from_json(struct worker_settings *s, const json_t *j,
    char *err, size_t errlen) __attribute__((warn_unused_result));
void settings_free(struct worker_settings *s);

/* Fill the update's type, chat and user. */
void wupdate_describe(struct wupdate *u);

/* worker/ctx.c */
struct tgrun_ctx *ctx_new(struct tgrun_bot *bot, struct wupdate *u);
/* Free a context whose fiber ended; the locks it still holds are released. */
void ctx_free(struct tgrun_ctx *ctx);
/* 1 when the calling context may yield (it runs on its own fiber). */
int ctx_in_fiber(const struct tgrun_ctx *ctx);
/* Cancel the update's fibers, or every background fiber (shutdown). */
void ctx_cancel_update(struct worker *w, struct wupdate *u);
void ctx_cancel_background(struct worker *w);
/*
 * Park the calling fiber as sched_park() does, after checking that ctx is
 * the running fiber (EPERM) and not cancelled (ECANCELED, abort run first).
 * 0 when woken, else -1 with errno.
 */
int ctx_park(struct tgrun_ctx *ctx, const char *what, task_abort_fn abort,
    void *obj, int64_t timeout_ms);
/* A timeout in seconds as sched_park() takes it: < 0 is -1 (none). */
int64_t ctx_timeout_ms(double seconds);
/*
 * Keep the first line of `text` (cut to FRAME_DONE_ERR_MAX bytes) as why
 * `u` failed. `explicit` (tgrun_fail) wins over a call's error.
 */
void ctx_update_error(struct wupdate *u, const char *text, int explicit);
/* A tgrun_* call of the running fiber failed with `desc`: noted for its update. */
void ctx_note_call_error(const char *desc);
/*
 * A call of the running fiber may have reached the Bot API and was not
 * retried ([api] retry_ambiguous = no): a failure of its update is final,
 * since running it again would send again what that rule held back.
 */
void ctx_note_ambiguous(void);

/* worker/spawn.c */
/* The update ended: drop its references to the fiber handles it made. */
void spawn_release_handles(struct wupdate *u);

/* worker/locks.c */
/* Hand every lock `ctx` holds to its next waiter (the fiber ended). */
void locks_release_all(struct tgrun_ctx *ctx);
void locks_free(struct worker *w);

/* worker/orphan.c: the master's death, with a journal (its done log on DONELOG_FD) */
/*
 * From the CONFIG frame's "done_log", "orphan_ms", "orphan_grace_ms": when
 * the master dies, finish what runs instead of dying with it. 0, or -1 (err).
 */
int orphan_setup(struct worker *w, const json_t *settings, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* A DONE frame with enum frame_status `status` is queued for update `id`. */
void orphan_note_done(struct worker *w, int64_t id, int status);
/*
 * The master's socket closed: 1 when this worker goes on as an orphan (its
 * running updates finish or are cancelled within the bound, each finished
 * one is recorded), 0 when it has no done log and must exit now.
 */
int orphan_begin(struct worker *w);
/* The orphan exits: say what it did. */
void orphan_end(struct worker *w);

/* worker/api.c */
void api_free_requests(struct worker *w);
/* Fill `err` (may be NULL). */
void api_set_err(struct tgrun_error *err, enum tgrun_error_kind kind,
    int code, int retry_after, const char *desc);
/*
 * Send the prepared Bot API request `r` (for `method`; `params` names the
 * chat for [throttle]) until it has an answer or the retry policy gives up,
 * each attempt through the transfer core and counted in the worker's stats.
 * Yields. The result (new reference), or NULL with `err` filled.
 */
json_t *api_send(struct tgrun_ctx *ctx, const char *method, const json_t *params,
    struct botapi_req *r, struct tgrun_error *err);

#endif
