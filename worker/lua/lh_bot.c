/* lua.so: the `bot` module (on_update, every, config, log, JSON helpers), print and os.exit. */
#include "lh.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>

/* bot.on_update(fn): fn(ctx, update) runs for every update. */
static int l_on_update(lua_State *L)
{
	struct lh *lh = lh_of(L);

	luaL_checktype(L, 1, LUA_TFUNCTION);
	lua_settop(L, 1);
	luaL_unref(L, LUA_REGISTRYINDEX, lh->on_update);
	lh->on_update = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

static int l_config(lua_State *L)
{
	const char *v = tgrun_config(lh_of(L)->bot, luaL_checkstring(L, 1));

	if (v == NULL)
		lua_pushnil(L);
	else
		lua_pushstring(L, v);
	return 1;
}

static int l_worker_index(lua_State *L)
{
	lua_pushinteger(L, tgrun_worker_index(lh_of(L)->bot));
	return 1;
}

static int l_worker_count(lua_State *L)
{
	lua_pushinteger(L, tgrun_worker_count(lh_of(L)->bot));
	return 1;
}

/* bot.now(): a monotonic clock, in seconds (for measuring, not for dates). */
static int l_now(lua_State *L)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
	return 1;
}

/* Join the values from `first` to the top with spaces, tostring'd. */
static const char *join(lua_State *L, int first)
{
	luaL_Buffer b;
	int n = lua_gettop(L);

	luaL_buffinit(L, &b);
	for (int i = first; i <= n; i++) {
		if (i > first)
			luaL_addchar(&b, ' ');
		luaL_tolstring(L, i, NULL);
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	return lua_tostring(L, -1);
}

/* bot.log(level, ...): level "error", "warn", "notice", "info", "debug" or 3..7. */
static int l_log(lua_State *L)
{
	static const char *const names[] = { "error", "warn", "notice", "info", "debug", NULL };
	int level;

	if (lua_type(L, 1) == LUA_TNUMBER) {
		level = (int)luaL_checkinteger(L, 1);
		luaL_argcheck(L, level >= 3 && level <= 7, 1, "3 (error) .. 7 (debug) expected");
	} else {
		level = 3 + luaL_checkoption(L, 1, NULL, names);
	}
	tgrun_log(lh_of(L)->bot, level, "lua: %s", join(L, 2));
	return 0;
}

/* print(...) logs at level info. */
static int l_print(lua_State *L)
{
	tgrun_log(lh_of(L)->bot, 6, "lua: %s", join(L, 1));
	return 0;
}

static int l_exit(lua_State *L)
{
	return luaL_error(L, "os.exit is not available in a tgrun worker (raise an "
	    "error to fail the update)");
}

/* bot.array(t): t is sent as a JSON array, even when empty. */
static int l_array(lua_State *L)
{
	if (lua_isnoneornil(L, 1))
		lua_newtable(L);
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	lh_json_array_mt(L);
	lua_setmetatable(L, 1);
	return 1;
}

/*
 * Run `fn` with `p` as its one argument under lua_pcall, so an allocation
 * error raised inside it leaves the caller free to release `p` first.
 */
static int call_protected(lua_State *L, lua_CFunction fn, void *p)
{
	lua_pushcfunction(L, fn);
	lua_pushlightuserdata(L, p);
	return lua_pcall(L, 1, 1, 0);
}

static int push_string_k(lua_State *L)
{
	lua_pushstring(L, lua_touserdata(L, 1));
	return 1;
}

static int l_json_encode(lua_State *L)
{
	char err[200], *s;
	json_t *j;
	int st;

	luaL_checkany(L, 1);
	if ((j = lh_json_from(L, 1, err, sizeof(err))) == NULL)
		return luaL_error(L, "bot.json_encode: %s", err);
	s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(j);
	if (s == NULL)
		return luaL_error(L, "bot.json_encode: out of memory");
	st = call_protected(L, push_string_k, s);
	free(s);
	if (st != LUA_OK)
		return lua_error(L);
	return 1;
}

static int push_decoded_k(lua_State *L)
{
	const json_t *j = lua_touserdata(L, 1);

	lua_pop(L, 1);
	lh_json_push(L, j);
	return 1;
}

/* bot.json_decode(s) -> value | nil, message */
static int l_json_decode(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	json_error_t je;
	json_t *j = json_loadb(s, len, JSON_DECODE_ANY, &je);
	int st;

	if (j == NULL) {
		lua_pushnil(L);
		lua_pushfstring(L, "bot.json_decode: %s at line %d, column %d", je.text,
		    je.line, je.column);
		return 2;
	}
	st = call_protected(L, push_decoded_k, j);
	json_decref(j);
	if (st != LUA_OK)
		return lua_error(L);
	return 1;
}

void lh_bot_open(lua_State *L)
{
	static const luaL_Reg fns[] = {
		{ "on_update", l_on_update }, { "every", lh_bot_every },
		{ "config", l_config }, { "log", l_log },
		{ "worker_index", l_worker_index }, { "worker_count", l_worker_count },
		{ "array", l_array }, { "now", l_now },
		{ "json_encode", l_json_encode }, { "json_decode", l_json_decode },
		{ NULL, NULL },
	};

	lh_json_array_mt(L);
	lua_pop(L, 1);
	luaL_newlib(L, fns);
	lua_pushlightuserdata(L, NULL);
	lua_setfield(L, -2, "null");
	/* require "tgrun" gives the same table */
	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	lua_pushvalue(L, -2);
	lua_setfield(L, -2, "tgrun");
	lua_pop(L, 1);
	lua_setglobal(L, "bot");

	lua_register(L, "print", l_print);
	if (lua_getglobal(L, "os") == LUA_TTABLE) {
		lua_pushcfunction(L, l_exit);
		lua_setfield(L, -2, "exit");
	}
	lua_pop(L, 1);
}
