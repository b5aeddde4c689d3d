/* lua.so, the Lua handler: what its files share (private to worker/lua/). */
#ifndef TGRUN_LH_H
#define TGRUN_LH_H

#include <stddef.h>
#include <jansson.h>
#include <lua.h>

#include "tgrun.h"

/* Metatable names in the registry. */
#define LH_CTX_MT	"tgrun.ctx"
#define LH_ERR_MT	"tgrun.error"
#define LH_FIBER_MT	"tgrun.fiber"
#define LH_WAITER_MT	"tgrun.waiter"
#define LH_LOCK_MT	"tgrun.lock"

/*
 * The worker's one Lua state and what the script registered. Every Lua
 * thread reaches it through its extra space (lh_of), which lua_newthread
 * copies from the main thread.
 */
struct lh {
	struct tgrun_bot *bot;
	lua_State *L;		/* the main thread: used only between yields */
	const char *script;
	size_t mem;		/* bytes the state holds */
	size_t limit;		/* [handler] lua_memory_limit; 0: none */
	int on_update;		/* registry ref of bot.on_update's function */
	int handlers;		/* registry ref of the returned table of handlers */
	int loading;		/* the script's main chunk runs: bot.every allowed */
	int idle[64];		/* registry refs of finished threads kept for reuse */
	int nidle;
};

static inline struct lh *lh_of(lua_State *L)
{
	return *(struct lh **)lua_getextraspace(L);
}

/*
 * One protected run of Lua code on the calling fiber, on thread `T`:
 * the script's handler for an update (fn_on_stack 0), or the function on
 * top of T's stack (fn_on_stack 1) called with a new ctx. Afterwards T
 * holds [message handler, results...] or [message handler, error]; the
 * ctx object is dead (its methods raise), a failure is logged (`what`
 * names the run) and the result is 0 or -1.
 */
struct lh_run {
	struct tgrun_ctx *ctx;
	const json_t *update;	/* the update to decode, or NULL */
	int fn_on_stack;
	const char *what;
	int status;		/* lua_pcall's */
	int failed;		/* the handler returned false, or nil and an error */
	struct lh_ctxud *cud;	/* the ctx object made for the run */
};
int lh_run(struct lh *lh, lua_State *T, struct lh_run *r);
/*
 * A Lua thread for a fiber, anchored in the registry (*ref), or NULL with
 * the failure logged (out of Lua memory).
 */
lua_State *lh_thread_get(struct lh *lh, int *ref);
/* Give a thread back after its run (it may be reused). */
void lh_thread_put(struct lh *lh, lua_State *T, int ref);
/* Log a failed run: the message, then the traceback a line each. */
void lh_log_failure(struct lh *lh, const char *what, int status, const char *msg);

/* lh_json.c: JSON values to Lua and back. */
/* Push `j` as a Lua value (raises on Lua errors: memory, depth). */
void lh_json_push(lua_State *L, const json_t *j);
/*
 * The Lua value at `idx` as JSON (new reference), or NULL with `err`
 * filled. Reads tables raw and never raises, so nothing leaks.
 */
json_t *lh_json_from(lua_State *L, int idx, char *err, size_t errlen);
/* bot.array's metatable: push it. */
void lh_json_array_mt(lua_State *L);
/* 1 when the value at idx is bot.null. */
int lh_json_isnull(lua_State *L, int idx);

/* lh_ctx.c: the ctx object and its calls. */
struct lh_ctxud {
	struct tgrun_ctx *ctx;	/* NULL once its fiber's function returned */
};
/* Register the ctx, error and lock metatables. */
void lh_ctx_open(lua_State *L);
/* Push a new ctx object for `ctx`; its update table is decoded lazily. */
struct lh_ctxud *lh_ctx_push(lua_State *L, struct tgrun_ctx *ctx);
/* The live tgrun_ctx of the ctx object at idx, or a Lua error. */
struct tgrun_ctx *lh_ctx_check(lua_State *L, int idx);
/*
 * Seconds at idx (or `def` when absent and def is not NAN): a number, NaN
 * refused, capped at a billion (the C API turns them into int64 ms).
 */
double lh_seconds(lua_State *L, int idx, double def);
/* Push nil and an error table; returns 2 (for `return lh_push_err(...)`). */
int lh_push_err(lua_State *L, const char *kind, int code, int retry_after,
    int maybe_delivered, const char *desc);
int lh_push_tgrun_err(lua_State *L, const struct tgrun_error *err);
/* Push the update as a Lua table, decoded from JSON. */
void lh_ctx_set_update(lua_State *L, int ctx_idx, int table_idx);

/* lh_fiber.c: spawn, join, all, waiters, every. */
void lh_fiber_open(lua_State *L);
int lh_ctx_spawn(lua_State *L);
int lh_ctx_join(lua_State *L);
int lh_ctx_all(lua_State *L);
int lh_ctx_waiter(lua_State *L);
/* bot.every(interval, fn) */
int lh_bot_every(lua_State *L);

/* lh_bot.c: the `bot` module (global, and require "tgrun"). */
void lh_bot_open(lua_State *L);

#endif
