/* lua.so: a tgrun handler that runs a bot written in Lua 5.4, one state per worker, a thread per fiber. */
#include "lh.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

/*
 * Lua and fibers: each update runs its own Lua thread on its own fiber,
 * and a call that waits (ctx:call, ctx:sleep...) switches the whole C
 * stack away inside a C function, with no Lua coroutine yield. Lua 5.4
 * keeps everything a running call needs per thread (its CallInfo chain,
 * nCcalls, the error jump buffer, which lives on that fiber's stack) and
 * nothing per C stack, so another thread of the same state may run
 * meanwhile, exactly as when a C function resumes a coroutine. The main
 * thread is used only between waits, never across one.
 */

TGRUN_HANDLER;

/* The worker's state; a handler has no other place to keep it. */
static struct lh *the_lh;

#define DEFAULT_MEMORY_LIMIT ((size_t)256 << 20)

/* The allocator: counts what the state holds and refuses growth past the limit. */
static void *lh_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct lh *lh = ud;
	size_t old = ptr != NULL ? osize : 0;
	void *p;

	if (nsize == 0) {
		free(ptr);
		lh->mem -= old;
		return NULL;
	}
	/* Lua runs a full collection and tries again before it raises an error. */
	if (lh->limit != 0 && nsize > old && lh->mem - old + nsize > lh->limit)
		return NULL;
	if ((p = realloc(ptr, nsize)) == NULL)
		return NULL;
	lh->mem = lh->mem - old + nsize;
	return p;
}

static int lh_panic(lua_State *L)
{
	const char *msg = lua_tostring(L, -1);

	tgrun_log(lh_of(L)->bot, 3, "lua: unprotected error (a bug in lua.so): %s",
	    msg ? msg : "?");
	abort();
}

/* The message handler of every run: the error and a traceback, as one string. */
static int msgh(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);

	if (msg == NULL)
		msg = luaL_tolstring(L, 1, NULL);
	luaL_traceback(L, L, msg, 1);
	return 1;
}

void lh_log_failure(struct lh *lh, const char *what, int status, const char *msg)
{
	const char *p, *nl;
	int first = 1;

	if (status == LUA_ERRMEM) {
		tgrun_log(lh->bot, 3, "lua: %s failed: not enough memory (the Lua state "
		    "holds %zu bytes; [handler] lua_memory_limit = %zu)", what, lh->mem,
		    lh->limit);
		return;
	}
	for (p = msg ? msg : "(no message)"; *p != '\0'; p = nl + (*nl != '\0')) {
		nl = strchr(p, '\n');
		if (nl == NULL)
			nl = p + strlen(p);
		while (*p == '\t')
			p++;
		/* The run's own C frame at the bottom says nothing. */
		if (!first && *nl == '\0' && strcmp(p, "[C]: in ?") == 0)
			continue;
		if (first)
			tgrun_log(lh->bot, 3, "lua: %s failed: %.*s", what, (int)(nl - p), p);
		else
			tgrun_log(lh->bot, 3, "lua: %s:   %.*s", what, (int)(nl - p), p);
		first = 0;
	}
}

/* ---- threads ------------------------------------------------------------------------- */

static int new_thread_k(lua_State *L)
{
	lua_newthread(L);
	lua_pushvalue(L, -1);
	lua_pushinteger(L, luaL_ref(L, LUA_REGISTRYINDEX));
	return 2;
}

lua_State *lh_thread_get(struct lh *lh, int *ref)
{
	lua_State *L = lh->L, *T;

	if (lh->nidle > 0) {
		*ref = lh->idle[--lh->nidle];
		lua_rawgeti(L, LUA_REGISTRYINDEX, *ref);
		T = lua_tothread(L, -1);
		lua_pop(L, 1);
		return T;
	}
	lua_pushcfunction(L, new_thread_k);
	if (lua_pcall(L, 0, 2, 0) != LUA_OK) {
		lh_log_failure(lh, "starting a Lua thread", LUA_ERRMEM, NULL);
		lua_pop(L, 1);
		return NULL;
	}
	T = lua_tothread(L, -2);
	*ref = (int)lua_tointeger(L, -1);
	lua_pop(L, 2);
	return T;
}

void lh_thread_put(struct lh *lh, lua_State *T, int ref)
{
	lua_settop(T, 0);
	if (lh->nidle < (int)(sizeof(lh->idle) / sizeof(lh->idle[0])) &&
	    lua_status(T) == LUA_OK) {
		lh->idle[lh->nidle++] = ref;
		return;
	}
	luaL_unref(lh->L, LUA_REGISTRYINDEX, ref);
}

/* ---- one run ------------------------------------------------------------------------- */

/* A handler that returned false, or nil and an error, failed. */
static void check_returned(lua_State *T, struct lh_run *r)
{
	char why[1024];

	if (lua_type(T, -2) == LUA_TBOOLEAN && !lua_toboolean(T, -2))
		snprintf(why, sizeof(why), "the handler returned false");
	else if (lua_isnil(T, -2) && !lua_isnil(T, -1))
		snprintf(why, sizeof(why), "the handler returned nil, %s",
		    luaL_tolstring(T, -1, NULL));
	else
		return;
	tgrun_log(lh_of(T)->bot, 4, "lua: %s failed: %s", r->what, why);
	(void)tgrun_fail(r->ctx, "%s", why);
	r->failed = 1;
}

/* Under lua_pcall: [fn?, r] -> the ctx object, the update, the call. */
static int run_k(lua_State *T)
{
	struct lh_run *r = lua_touserdata(T, -1);
	struct lh *lh = lh_of(T);
	int ctx_i, upd_i;
	const char *type;

	lua_pop(T, 1);
	/* A copy stays in this frame: the object outlives the run's end. */
	r->cud = lh_ctx_push(T, r->ctx);
	ctx_i = lua_gettop(T);
	if (r->fn_on_stack) {
		lua_pushvalue(T, 1);
		lua_pushvalue(T, ctx_i);
		lua_call(T, 1, LUA_MULTRET);
		return lua_gettop(T) - ctx_i;
	}
	lh_json_push(T, r->update);
	upd_i = lua_gettop(T);
	lh_ctx_set_update(T, ctx_i, upd_i);
	if (lh->on_update != LUA_NOREF) {
		lua_rawgeti(T, LUA_REGISTRYINDEX, lh->on_update);
		lua_pushvalue(T, ctx_i);
		lua_pushvalue(T, upd_i);
		lua_call(T, 2, 2);
	} else {
		type = tgrun_update_type(r->ctx);
		lua_rawgeti(T, LUA_REGISTRYINDEX, lh->handlers);
		if (lua_getfield(T, -1, type) != LUA_TFUNCTION)
			return 0;	/* no handler for this type: done */
		lua_pushvalue(T, ctx_i);
		lua_getfield(T, upd_i, type);
		lua_pushvalue(T, upd_i);
		lua_call(T, 3, 2);
	}
	check_returned(T, r);
	return 0;
}

int lh_run(struct lh *lh, lua_State *T, struct lh_run *r)
{
	lua_pushcfunction(T, msgh);
	lua_insert(T, 1);
	lua_pushcfunction(T, run_k);
	lua_insert(T, 2);
	lua_pushlightuserdata(T, r);
	r->failed = 0;
	r->cud = NULL;
	r->status = lua_pcall(T, r->fn_on_stack + 1, LUA_MULTRET, 1);
	if (r->cud != NULL)
		r->cud->ctx = NULL;
	if (r->status != LUA_OK) {
		const char *msg = lua_tostring(T, -1);

		lh_log_failure(lh, r->what, r->status, msg);
		/* The message's first line: the traceback is in the log. */
		return r->status == LUA_ERRMEM ? tgrun_fail(r->ctx, "not enough memory "
		    "([handler] lua_memory_limit = %zu)", lh->limit) :
		    tgrun_fail(r->ctx, "%s", msg ? msg : "(no message)");
	}
	return r->failed ? -1 : 0;
}

/* ---- the handler's exports ------------------------------------------------------------ */

int tgrun_handle(struct tgrun_ctx *ctx, const json_t *update)
{
	struct lh *lh = the_lh;
	char what[96];
	struct lh_run r = { .ctx = ctx, .update = update, .what = what };
	lua_State *T;
	int ref, rc;

	snprintf(what, sizeof(what), "update %lld (%s)", (long long)tgrun_update_id(ctx),
	    tgrun_update_type(ctx));
	if ((T = lh_thread_get(lh, &ref)) == NULL)
		return tgrun_fail(ctx, "not enough memory for a Lua thread");
	rc = lh_run(lh, T, &r);
	lh_thread_put(lh, T, ref);
	return rc;
}

/* "64m", "512k", "1g", bytes, or 0 (no limit); -1 when it is none of those. */
static int parse_size(const char *s, size_t *out)
{
	char *end;
	unsigned long long v;
	int shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (end == s || errno != 0 || *s == '-')
		return -1;
	switch (tolower((unsigned char)*end)) {
	case 'k': shift = 10; end++; break;
	case 'm': shift = 20; end++; break;
	case 'g': shift = 30; end++; break;
	}
	if (*end != '\0' || (shift && v > (~0ULL >> shift)))
		return -1;
	*out = (size_t)(v << shift);
	return 0;
}

/* package.path (or cpath) from a [handler] key: ";;" stands for Lua's default. */
static void set_path(lua_State *L, const char *field, const char *value,
    const char *prepend)
{
	int top = lua_gettop(L);

	lua_getglobal(L, "package");
	lua_getfield(L, top + 1, field);
	if (value != NULL) {
		lua_pushfstring(L, ";%s;", lua_tostring(L, top + 2));
		luaL_gsub(L, value, ";;", lua_tostring(L, -1));
	} else {
		lua_pushfstring(L, "%s;%s", prepend, lua_tostring(L, top + 2));
	}
	lua_setfield(L, top + 1, field);
	lua_settop(L, top);
}

/* Under lua_pcall: the libraries and modules, package.path. */
static int setup_k(lua_State *L)
{
	struct lh *lh = lh_of(L);
	const char *slash = strrchr(lh->script, '/');
	char dir[1024];

	luaL_openlibs(L);
	lh_ctx_open(L);
	lh_fiber_open(L);
	lh_bot_open(L);
	/* Modules next to the script are found first, unless lua_path says otherwise. */
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - lh->script) : 1,
	    slash ? lh->script : ".");
	lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", dir, dir);
	set_path(L, "path", tgrun_config(lh->bot, "lua_path"), lua_tostring(L, -1));
	lua_pushfstring(L, "%s/?.so", dir);
	set_path(L, "cpath", tgrun_config(lh->bot, "lua_cpath"), lua_tostring(L, -1));
	return 0;
}

/* Under lua_pcall: what the main chunk returned ([value]) -> the handlers. */
static int handlers_k(lua_State *L)
{
	struct lh *lh = lh_of(L);

	if (lua_type(L, 1) == LUA_TTABLE) {
		lua_pushnil(L);
		while (lua_next(L, 1) != 0) {
			if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TFUNCTION) {
				const char *tn = luaL_typename(L, -1);

				return luaL_error(L, "the table the script returns maps update "
				    "types to functions; key %s holds a %s",
				    luaL_tolstring(L, -2, NULL), tn);
			}
			lua_pop(L, 1);
		}
		if (lh->on_update != LUA_NOREF)
			return luaL_error(L, "the script both calls bot.on_update and returns "
			    "a table of handlers; use one of them");
		lua_settop(L, 1);
		lh->handlers = luaL_ref(L, LUA_REGISTRYINDEX);
		return 0;
	}
	if (!lua_isnil(L, 1))
		return luaL_error(L, "the script returned a %s; return a table of handlers "
		    "per update type, or nothing", luaL_typename(L, 1));
	if (lh->on_update == LUA_NOREF)
		return luaL_error(L, "the script registers no handler: call "
		    "bot.on_update(function(ctx, update) ... end) or return a table of "
		    "handlers per update type");
	return 0;
}

/* Promote liblua to global scope, so that Lua C modules find its symbols. */
static void lua_symbols_global(struct lh *lh)
{
	Dl_info info;

	if (dladdr((void *)lua_newstate, &info) == 0 || info.dli_fname == NULL ||
	    dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD) == NULL)
		tgrun_log(lh->bot, 7, "lua: Lua C modules may not load: liblua stays local");
}

/*
 * The script as a chunk named after its file name: Lua cuts a chunk name
 * to 60 bytes, so a long path would show as "...", while every error
 * message and traceback line starts with it. Log lines give the path.
 */
static int load_file(struct lh *lh)
{
	const char *slash = strrchr(lh->script, '/');
	FILE *f = fopen(lh->script, "re");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	int st;

	if (f == NULL) {
		lua_pushfstring(lh->L, "cannot open: %s", strerror(errno));
		return LUA_ERRFILE;
	}
	do {
		if (len == cap) {
			char *nb = realloc(buf, cap = cap ? cap * 2 : 65536);

			if (nb == NULL) {
				free(buf);
				fclose(f);
				lua_pushliteral(lh->L, "out of memory");
				return LUA_ERRMEM;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	if (ferror(f)) {
		free(buf);
		fclose(f);
		lua_pushfstring(lh->L, "cannot read: %s", strerror(errno));
		return LUA_ERRFILE;
	}
	fclose(f);
	/* A first line "#!..." is a comment, as for lua(1); line numbers stay. */
	for (size_t i = 0; len > 0 && buf[0] == '#' && i < len && buf[i] != '\n'; i++)
		buf[i] = ' ';
	lua_pushfstring(lh->L, "@%s", slash ? slash + 1 : lh->script);
	st = luaL_loadbufferx(lh->L, buf, len, lua_tostring(lh->L, -1), "t");
	free(buf);
	lua_remove(lh->L, -2);
	return st;
}

static int load_script(struct lh *lh)
{
	lua_State *L = lh->L;
	char what[1100];
	int st;

	lua_pushcfunction(L, setup_k);
	if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
		lh_log_failure(lh, "setting up Lua", LUA_ERRMEM, NULL);
		return -1;
	}
	if ((st = load_file(lh)) != LUA_OK) {
		tgrun_log(lh->bot, 3, "lua: cannot load the script %s: %s", lh->script,
		    lua_tostring(L, -1));
		return -1;
	}
	snprintf(what, sizeof(what), "loading %s", lh->script);
	lua_pushcfunction(L, msgh);
	lua_insert(L, -2);
	lh->loading = 1;
	st = lua_pcall(L, 0, 1, -2);
	lh->loading = 0;
	if (st == LUA_OK) {
		lua_pushcfunction(L, handlers_k);
		lua_insert(L, -2);
		st = lua_pcall(L, 1, 0, -3);
	}
	if (st != LUA_OK) {
		lh_log_failure(lh, what, st, lua_tostring(L, -1));
		return -1;
	}
	lua_settop(L, 0);
	return 0;
}

int tgrun_init(struct tgrun_bot *bot)
{
	const char *script = tgrun_config(bot, "script");
	const char *limit = tgrun_config(bot, "lua_memory_limit");
	struct lh *lh;

	if (script == NULL || *script == '\0') {
		tgrun_log(bot, 3, "lua: [handler] script is not set (the path of the bot's "
		    "Lua script)");
		return -1;
	}
	if ((lh = calloc(1, sizeof(*lh))) == NULL)
		return -1;
	lh->bot = bot;
	lh->script = script;
	lh->limit = DEFAULT_MEMORY_LIMIT;
	lh->on_update = lh->handlers = LUA_NOREF;
	if (limit != NULL && parse_size(limit, &lh->limit) != 0) {
		tgrun_log(bot, 3, "lua: [handler] lua_memory_limit = %s: a size is expected "
		    "(bytes, or with k, m or g; 0 for no limit)", limit);
		free(lh);
		return -1;
	}
	if ((lh->L = lua_newstate(lh_alloc, lh)) == NULL) {
		tgrun_log(bot, 3, "lua: cannot create a Lua state");
		free(lh);
		return -1;
	}
	*(struct lh **)lua_getextraspace(lh->L) = lh;
	lua_atpanic(lh->L, lh_panic);
	lua_symbols_global(lh);
	if (load_script(lh) != 0) {
		lua_close(lh->L);
		free(lh);
		return -1;
	}
	the_lh = lh;
	tgrun_log(bot, 6, "lua: %s loaded (%s, Lua state %zu KiB, limit %zu KiB)", script,
	    lh->on_update != LUA_NOREF ? "bot.on_update" : "a table of handlers",
	    lh->mem >> 10, lh->limit >> 10);
	return 0;
}

void tgrun_fini(struct tgrun_bot *bot)
{
	if (the_lh == NULL)
		return;
	lua_close(the_lh->L);
	free(the_lh);
	the_lh = NULL;
}
