/* A worker process: settings from the master, the handler, updates and their fibers. */
#ifndef TGRUN_WORKER_H
#define TGRUN_WORKER_H

#include <stdint.h>
#include <jansson.h>

#include "backoff.h"
#include "botapi.h"
#include "handler.h"
#include "tgrun.h"
#include "u64map.h"

struct event_base;
struct bufferevent;
struct evcurl;
struct fiber_pool;
struct wstats;
struct sched;
struct task;

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
	struct tgrun_ctx *ctxs;		/* main and attached children, alive */
	struct tgrun_fiber *handles;	/* released when the update ends */
	int status;			/* enum frame_status */
	int64_t t0;
	struct wupdate *qnext;		/* waiting for a running slot */
};

struct tgrun_ctx {
	struct tgrun_bot *bot;
	struct wupdate *u;		/* NULL for background fibers */
	struct task *task;
	struct tgrun_ctx *next, *prev;	/* in u->ctxs or the worker's background list */
	struct lockheld *locks;		/* tgrun_lock()s held by this fiber */
};

struct worker {
	struct event_base *base;
	struct bufferevent *bev;
	struct fiber_pool *pool;
	struct sched *sched;
	struct evcurl *ec;
	struct tgrun_bot bot;
	int configured, draining, quit, exit_status;
	struct u64map updates;		/* id -> struct wupdate, running or queued */
	int running;			/* updates whose fibers run */
	struct wupdate *qhead, *qtail;	/* over worker_concurrency: waiting */
	struct tgrun_ctx *background;	/* detached and periodic fibers */
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

/* worker/runtime.c */
struct tgrun_ctx *ctx_new(struct tgrun_bot *bot, struct wupdate *u);
void ctx_free(struct tgrun_ctx *ctx);
void runtime_cancel_update(struct worker *w, struct wupdate *u);
void runtime_cancel_background(struct worker *w);
/* The update ended: drop its references to the fiber handles it made. */
void runtime_release_handles(struct wupdate *u);
/* 1 when the calling context may yield (it runs on its own fiber). */
int ctx_in_fiber(const struct tgrun_ctx *ctx);
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
/* The state of one call's retries. */
struct api_retry {
	struct backoff bo;
	int attempt;		/* attempts made, less one */
	int maybe_delivered;	/* an earlier attempt may have run */
};
void api_retry_init(struct api_retry *rs, const void *seed);
/*
 * The retry policy of tgrun_call and tgrun_upload (tgrun.h says it), given
 * one attempt's outcome on `easy` (decoded: botapi_decode's return): the
 * milliseconds to wait before the next attempt, or -1 when the call ends
 * here with `err` filled.
 */
int64_t api_retry_policy(struct worker *w, const char *method, struct api_retry *rs,
    CURL *easy, int decoded, const struct botapi_result *res, CURLcode cc,
    struct tgrun_error *err);
/*
 * Before each attempt of a Bot API call: under [throttle], wait (yielding)
 * until `method` to the chat in `params` may go. 0, or ECANCELED.
 */
int api_throttle(struct worker *w, const char *method, const json_t *params);

#endif
