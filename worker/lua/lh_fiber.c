/* lua.so: Lua functions on fibers of their own: spawn/join, all, waiters, every. */
#include "lh.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

/*
 * Where a spawned function runs and what it leaves. The object is anchored
 * in the registry (self) while its fiber runs; its thread, holding the
 * function's results, lives as long as the object.
 */
struct lh_fiber {
	struct lh *lh;
	lua_State *T;
	int tref, self;
	struct tgrun_waiter *done;	/* released when the function returned */
	int finished, ok, detached;
	int64_t update_id;		/* of the spawning fiber, for the log */
};

/* Move the function at the top of L onto a new thread. NULL: logged, nothing moved. */
static lua_State *thread_with_fn(struct lh *lh, lua_State *L, int *ref)
{
	lua_State *T = lh_thread_get(lh, ref);

	if (T == NULL)
		return NULL;
	lua_xmove(L, T, 1);
	return T;
}

/* Results of a finished run on T ([msgh, values...] or [msgh, error]) as {ok, ...}. */
static int push_outcome(lua_State *L, lua_State *T, int ok, int as_table)
{
	int n = lua_gettop(T) - 1;

	if (!ok) {
		const char *msg, *nl;

		lh_push_err(L, "error", 0, 0, 0, "");
		lua_remove(L, -2);
		lua_pushvalue(T, -1);
		lua_xmove(T, L, 1);
		msg = lua_tostring(L, -1);
		if (msg == NULL)
			msg = "(error object is not a string)";
		nl = strchr(msg, '\n');
		lua_pushlstring(L, msg, nl ? (size_t)(nl - msg) : strlen(msg));
		lua_setfield(L, -3, "description");
		lua_setfield(L, -2, "traceback");
		if (as_table) {
			lua_createtable(L, 2, 0);
			lua_pushboolean(L, 0);
			lua_rawseti(L, -2, 1);
			lua_insert(L, -2);
			lua_rawseti(L, -2, 2);
			return 1;
		}
		lua_pushnil(L);
		lua_insert(L, -2);
		return 2;
	}
	luaL_checkstack(L, n + 3, "results");
	if (as_table)
		lua_createtable(L, n + 1, 0);
	lua_pushboolean(L, 1);
	if (as_table)
		lua_rawseti(L, -2, 1);
	for (int i = 0; i < n; i++) {
		lua_pushvalue(T, i + 2);
		lua_xmove(T, L, 1);
		if (as_table)
			lua_rawseti(L, -2, i + 2);
	}
	return as_table ? 1 : n + 1;
}

/* ---- spawn and join ---------------------------------------------------------------- */

static int fiber_main(struct tgrun_ctx *ctx, void *arg)
{
	struct lh_fiber *f = arg;
	char what[80];
	struct lh_run r = { .ctx = ctx, .fn_on_stack = 1, .what = what };
	int rc;

	snprintf(what, sizeof(what), "%s fiber spawned by update %lld",
	    f->detached ? "detached" : "a", (long long)f->update_id);
	rc = lh_run(f->lh, f->T, &r);

	f->ok = rc == 0;
	f->finished = 1;
	(void)tgrun_waiter_done(f->done);
	/* The object may be collected now; its thread goes with it. */
	luaL_unref(f->T, LUA_REGISTRYINDEX, f->self);
	f->self = LUA_NOREF;
	return rc;
}

static int fiber_gc(lua_State *L)
{
	struct lh_fiber *f = luaL_checkudata(L, 1, LH_FIBER_MT);

	if (f->T != NULL)
		luaL_unref(L, LUA_REGISTRYINDEX, f->tref);
	f->T = NULL;
	tgrun_waiter_free(f->done);
	f->done = NULL;
	return 0;
}

/* ctx:spawn(fn [, {detached = true}]) -> fiber | nil, err */
int lh_ctx_spawn(lua_State *L)
{
	struct tgrun_ctx *ctx = lh_ctx_check(L, 1);
	struct lh_fiber *f;
	int detached = 0;

	luaL_checktype(L, 2, LUA_TFUNCTION);
	if (lua_type(L, 3) == LUA_TTABLE) {
		lua_getfield(L, 3, "detached");
		detached = lua_toboolean(L, -1);
	}
	lua_settop(L, 2);
	f = lua_newuserdatauv(L, sizeof(*f), 0);
	memset(f, 0, sizeof(*f));
	f->lh = lh_of(L);
	f->tref = f->self = LUA_NOREF;
	f->detached = detached;
	f->update_id = tgrun_update_id(ctx);
	luaL_setmetatable(L, LH_FIBER_MT);
	f->done = tgrun_waiter_new(ctx, 1);
	if (f->done == NULL)
		return luaL_error(L, "ctx:spawn: out of memory");
	lua_pushvalue(L, 2);
	if ((f->T = thread_with_fn(f->lh, L, &f->tref)) == NULL)
		return luaL_error(L, "ctx:spawn: out of Lua memory");
	lua_pushvalue(L, 3);
	f->self = luaL_ref(L, LUA_REGISTRYINDEX);
	if (tgrun_spawn(ctx, fiber_main, f, detached ? TGRUN_DETACHED : 0) == NULL) {
		luaL_unref(L, LUA_REGISTRYINDEX, f->self);
		f->self = LUA_NOREF;
		return lh_push_err(L, "invalid", 0, 0, 0, "ctx:spawn: cannot start a fiber");
	}
	return 1;
}

/* ctx:join(fiber [, timeout]) -> true, results... | nil, err */
int lh_ctx_join(lua_State *L)
{
	struct tgrun_ctx *ctx = lh_ctx_check(L, 1);
	struct lh_fiber *f = luaL_checkudata(L, 2, LH_FIBER_MT);
	double timeout = lh_seconds(L, 3, -1);

	(void)ctx;
	if (!f->finished && tgrun_waiter_wait(f->done, timeout) != 0) {
		if (errno == EINVAL)
			return luaL_error(L, "ctx:join: another fiber is joining this one");
		if (errno == ETIMEDOUT)
			return lh_push_err(L, "timeout", 0, 0, 0, "ctx:join: timed out");
		if (errno == ECANCELED)
			return lh_push_err(L, "cancelled", 0, 0, 0, "the update was cancelled");
		return lh_push_err(L, "invalid", 0, 0, 0, strerror(errno));
	}
	return push_outcome(L, f->T, f->ok, 0);
}

/* ---- all ----------------------------------------------------------------------------- */

struct all_slot {
	struct lh *lh;
	lua_State *T;
	int ok;
	int n;			/* its place in the list, from 1 */
};

static int slot_main(struct tgrun_ctx *ctx, void *arg)
{
	struct all_slot *s = arg;
	char what[80];
	struct lh_run r = { .ctx = ctx, .fn_on_stack = 1, .what = what };
	int rc;

	snprintf(what, sizeof(what), "ctx:all function %d of update %lld", s->n,
	    (long long)tgrun_update_id(ctx));
	rc = lh_run(s->lh, s->T, &r);

	s->ok = rc == 0;
	return rc;
}

/* ctx:all({fn, ...} [, {fail_fast = true, timeout = s}]) -> results, all_ok */
int lh_ctx_all(lua_State *L)
{
	struct tgrun_ctx *ctx = lh_ctx_check(L, 1);
	struct lh *lh = lh_of(L);
	int fail_fast = 0, anchor, all_ok = 1;
	double timeout = -1;
	struct all_slot *slots;
	struct tgrun_result *res;
	tgrun_fn *fns;
	void **args;
	size_t n;

	luaL_checktype(L, 2, LUA_TTABLE);
	if (lua_type(L, 3) == LUA_TTABLE) {
		lua_getfield(L, 3, "fail_fast");
		fail_fast = lua_toboolean(L, -1);
		lua_getfield(L, 3, "timeout");
		timeout = lh_seconds(L, -1, -1);
	}
	lua_settop(L, 2);
	n = lua_rawlen(L, 2);
	for (size_t i = 1; i <= n; i++) {
		if (lua_rawgeti(L, 2, (lua_Integer)i) != LUA_TFUNCTION)
			return luaL_error(L, "ctx:all: element %d is not a function", (int)i);
		lua_pop(L, 1);
	}
	/* One block, collected with the call: slots, fns, args, results. */
	slots = lua_newuserdatauv(L, n * (sizeof(*slots) + sizeof(*fns) + sizeof(*args) +
	    sizeof(*res)) + 1, 0);
	fns = (tgrun_fn *)(slots + n);
	args = (void **)(fns + n);
	res = (struct tgrun_result *)(args + n);
	/* The slots' threads, anchored here until the results are copied. */
	lua_createtable(L, (int)n, 0);
	anchor = lua_gettop(L);
	for (size_t i = 0; i < n; i++) {
		int ref;

		lua_rawgeti(L, 2, (lua_Integer)i + 1);
		slots[i].lh = lh;
		slots[i].ok = 0;
		slots[i].n = (int)i + 1;
		if ((slots[i].T = thread_with_fn(lh, L, &ref)) == NULL)
			return luaL_error(L, "ctx:all: out of Lua memory");
		lua_pushthread(slots[i].T);
		lua_xmove(slots[i].T, L, 1);
		lua_rawseti(L, anchor, (lua_Integer)i + 1);
		luaL_unref(L, LUA_REGISTRYINDEX, ref);
		fns[i] = slot_main;
		args[i] = &slots[i];
		/* What a slot says if tgrun_all refuses to start (a ctx of another fiber). */
		res[i].status = TGRUN_SLOT_CANCELLED;
		res[i].ret = -1;
	}
	(void)tgrun_all(ctx, n, fns, args, res, fail_fast ? TGRUN_ALL_FAIL_FAST :
	    TGRUN_ALL_SETTLED, timeout);
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		if (res[i].status == TGRUN_SLOT_OK || res[i].status == TGRUN_SLOT_FAILED) {
			push_outcome(L, slots[i].T, res[i].status == TGRUN_SLOT_OK, 1);
		} else {
			lua_createtable(L, 2, 0);
			lua_pushboolean(L, 0);
			lua_rawseti(L, -2, 1);
			if (res[i].status == TGRUN_SLOT_TIMEOUT)
				lh_push_err(L, "timeout", 0, 0, 0, "ctx:all: timed out");
			else
				lh_push_err(L, "cancelled", 0, 0, 0, "cancelled");
			lua_rawseti(L, -3, 2);
			lua_pop(L, 1);
		}
		if (res[i].status != TGRUN_SLOT_OK)
			all_ok = 0;
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_pushboolean(L, all_ok);
	return 2;
}

/* ---- waiters --------------------------------------------------------------------------- */

struct lh_waiter {
	struct tgrun_waiter *w;
};

/* ctx:waiter(n) -> waiter: w:wait([timeout]) until w:done() was called n times. */
int lh_ctx_waiter(lua_State *L)
{
	struct tgrun_ctx *ctx = lh_ctx_check(L, 1);
	lua_Integer n = luaL_optinteger(L, 2, 1);
	struct lh_waiter *w;

	luaL_argcheck(L, n >= 0 && n <= 1000000000, 2, "0..1e9 expected");
	w = lua_newuserdatauv(L, sizeof(*w), 0);
	w->w = NULL;
	luaL_setmetatable(L, LH_WAITER_MT);
	if ((w->w = tgrun_waiter_new(ctx, (int)n)) == NULL)
		return luaL_error(L, "ctx:waiter: out of memory");
	return 1;
}

static int waiter_wait(lua_State *L)
{
	struct lh_waiter *w = luaL_checkudata(L, 1, LH_WAITER_MT);

	if (tgrun_waiter_wait(w->w, lh_seconds(L, 2, -1)) != 0) {
		if (errno == ETIMEDOUT)
			return lh_push_err(L, "timeout", 0, 0, 0, "waiter: timed out");
		if (errno == ECANCELED)
			return lh_push_err(L, "cancelled", 0, 0, 0, "the update was cancelled");
		return lh_push_err(L, "invalid", 0, 0, 0, errno == EINVAL ?
		    "waiter: another fiber waits on it" : strerror(errno));
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int waiter_done(lua_State *L)
{
	struct lh_waiter *w = luaL_checkudata(L, 1, LH_WAITER_MT);

	if (tgrun_waiter_done(w->w) != 0)
		return lh_push_err(L, "invalid", 0, 0, 0,
		    "waiter: done() called more times than it waits for");
	lua_pushboolean(L, 1);
	return 1;
}

static int waiter_gc(lua_State *L)
{
	struct lh_waiter *w = luaL_checkudata(L, 1, LH_WAITER_MT);

	tgrun_waiter_free(w->w);
	w->w = NULL;
	return 0;
}

/* ---- every ----------------------------------------------------------------------------- */

/* A periodic job: its function and the thread it runs on, for the worker's life. */
struct every_job {
	struct lh *lh;
	lua_State *T;
	int fn;
};

static int every_tick(struct tgrun_ctx *ctx, void *arg)
{
	struct every_job *e = arg;
	struct lh_run r = { .ctx = ctx, .fn_on_stack = 1, .what = "periodic task" };
	int rc;

	lua_settop(e->T, 0);
	lua_rawgeti(e->T, LUA_REGISTRYINDEX, e->fn);
	rc = lh_run(e->lh, e->T, &r);
	lua_settop(e->T, 0);
	return rc;
}

/* bot.every(interval, fn): fn(ctx) every interval seconds; only while the script loads. */
int lh_bot_every(lua_State *L)
{
	struct lh *lh = lh_of(L);
	double interval = lh_seconds(L, 1, NAN);
	struct every_job *e;
	int ref;

	luaL_checktype(L, 2, LUA_TFUNCTION);
	luaL_argcheck(L, interval > 0, 1, "a positive number of seconds expected");
	if (!lh->loading)
		return luaL_error(L, "bot.every: call it when the script loads, not later");
	/* Lives as long as the worker; lost only if tgrun_every fails. */
	e = lua_newuserdatauv(L, sizeof(*e), 0);
	e->lh = lh;
	lua_pushvalue(L, 2);
	e->fn = luaL_ref(L, LUA_REGISTRYINDEX);
	if ((e->T = lh_thread_get(lh, &ref)) == NULL)
		return luaL_error(L, "bot.every: out of Lua memory");
	luaL_ref(L, LUA_REGISTRYINDEX);		/* the job itself */
	if (tgrun_every(lh->bot, interval, every_tick, e) != 0)
		return luaL_error(L, "bot.every: cannot start the periodic task");
	return 0;
}

void lh_fiber_open(lua_State *L)
{
	static const luaL_Reg waiter_methods[] = {
		{ "wait", waiter_wait }, { "done", waiter_done }, { NULL, NULL },
	};

	luaL_newmetatable(L, LH_FIBER_MT);
	lua_pushcfunction(L, fiber_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
	luaL_newmetatable(L, LH_WAITER_MT);
	luaL_newlib(L, waiter_methods);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, waiter_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
}
