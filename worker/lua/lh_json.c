/* lua.so: JSON values to Lua values and back (updates and results in, parameters out). */
#include "lh.h"

#include <math.h>
#include <stdio.h>

#include <lauxlib.h>

/*
 * Deeper than any Bot API object; bounds the C recursion on a fiber's
 * stack and catches tables that contain themselves.
 */
#define LH_JSON_DEPTH 64

/* The registry key of bot.array's metatable (its address). */
static const char array_mt_key = 'a';

void lh_json_array_mt(lua_State *L)
{
	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key) != LUA_TNIL)
		return;
	lua_pop(L, 1);
	lua_createtable(L, 0, 1);
	lua_pushliteral(L, "array");
	lua_setfield(L, -2, "__name");
	lua_pushvalue(L, -1);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &array_mt_key);
}

int lh_json_isnull(lua_State *L, int idx)
{
	return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}

static void push(lua_State *L, const json_t *j, int depth)
{
	const char *key;
	json_t *v;
	size_t i, n;

	if (depth > LH_JSON_DEPTH)
		luaL_error(L, "JSON nested deeper than %d levels", LH_JSON_DEPTH);
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		luaL_checkstack(L, 3, "JSON object");
		lua_createtable(L, 0, (int)json_object_size(j));
		json_object_foreach((json_t *)j, key, v) {
			push(L, v, depth + 1);
			lua_setfield(L, -2, key);
		}
		break;
	case JSON_ARRAY:
		luaL_checkstack(L, 3, "JSON array");
		n = json_array_size(j);
		lua_createtable(L, (int)n, 0);
		for (i = 0; i < n; i++) {
			push(L, json_array_get(j, i), depth + 1);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		/* Kept an array when sent back, even empty. */
		lh_json_array_mt(L);
		lua_setmetatable(L, -2);
		break;
	case JSON_STRING:
		lua_pushlstring(L, json_string_value(j), json_string_length(j));
		break;
	case JSON_INTEGER:
		lua_pushinteger(L, (lua_Integer)json_integer_value(j));
		break;
	case JSON_REAL:
		lua_pushnumber(L, (lua_Number)json_real_value(j));
		break;
	case JSON_TRUE:
		lua_pushboolean(L, 1);
		break;
	case JSON_FALSE:
		lua_pushboolean(L, 0);
		break;
	default:
		lua_pushlightuserdata(L, NULL);		/* bot.null */
		break;
	}
}

void lh_json_push(lua_State *L, const json_t *j)
{
	push(L, j, 0);
}

/* ---- Lua to JSON: never raises (lua_checkstack, raw reads, no conversions) ---- */

static json_t *from(lua_State *L, int idx, int depth, char *err, size_t errlen);

/* The sequence t[1..n] when the table is one, else -1. */
static lua_Integer seq_len(lua_State *L, int idx)
{
	lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;

	if (lua_getmetatable(L, idx)) {
		int is_array;

		lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key);
		is_array = lua_rawequal(L, -1, -2);
		lua_pop(L, 2);
		if (is_array)
			return n;
	}
	if (n == 0)
		return -1;	/* {} is an object; bot.array({}) is [] */
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		lua_pop(L, 1);
		if (++count > n) {
			lua_pop(L, 1);
			return -1;
		}
	}
	return count == n ? n : -1;
}

static json_t *from_array(lua_State *L, int idx, lua_Integer n, int depth,
    char *err, size_t errlen)
{
	json_t *a = json_array(), *v;

	if (a == NULL)
		return snprintf(err, errlen, "out of memory"), NULL;
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, idx, i);
		v = lua_isnil(L, -1) ? NULL : from(L, lua_gettop(L), depth + 1, err, errlen);
		lua_pop(L, 1);
		if (v == NULL || json_array_append_new(a, v) != 0) {
			if (v == NULL && err[0] == '\0')
				snprintf(err, errlen, "array element %lld is nil", (long long)i);
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static json_t *from_object(lua_State *L, int idx, int depth, char *err, size_t errlen)
{
	json_t *o = json_object(), *v;
	const char *k;
	size_t klen;

	if (o == NULL)
		return snprintf(err, errlen, "out of memory"), NULL;
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		if (lua_type(L, -2) != LUA_TSTRING) {
			snprintf(err, errlen, "a table with a %s key is neither a JSON object "
			    "(string keys) nor an array (keys 1..n)", luaL_typename(L, -2));
			lua_pop(L, 2);
			json_decref(o);
			return NULL;
		}
		k = lua_tolstring(L, -2, &klen);
		v = from(L, lua_gettop(L), depth + 1, err, errlen);
		lua_pop(L, 1);
		if (v == NULL || json_object_setn_new(o, k, klen, v) != 0) {
			if (v != NULL)
				snprintf(err, errlen, "key \"%.40s\" is not UTF-8", k);
			lua_pop(L, 1);
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

static json_t *from(lua_State *L, int idx, int depth, char *err, size_t errlen)
{
	const char *s;
	size_t len;
	lua_Integer n;
	json_t *j;

	if (depth > LH_JSON_DEPTH || !lua_checkstack(L, 4)) {
		snprintf(err, errlen, "nested deeper than %d levels (a table that "
		    "contains itself?)", LH_JSON_DEPTH);
		return NULL;
	}
	switch (lua_type(L, idx)) {
	case LUA_TTABLE:
		n = seq_len(L, idx);
		return n >= 0 ? from_array(L, idx, n, depth, err, errlen) :
		    from_object(L, idx, depth, err, errlen);
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &len);
		if ((j = json_stringn(s, len)) == NULL)
			snprintf(err, errlen, "string \"%.40s\" is not UTF-8", s);
		return j;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx))
			j = json_integer((json_int_t)lua_tointeger(L, idx));
		else if (isfinite(lua_tonumber(L, idx)))
			j = json_real((double)lua_tonumber(L, idx));
		else
			return snprintf(err, errlen, "NaN or infinity is not JSON"), NULL;
		break;
	case LUA_TBOOLEAN:
		j = json_boolean(lua_toboolean(L, idx));
		break;
	case LUA_TLIGHTUSERDATA:
		if (lh_json_isnull(L, idx)) {
			j = json_null();
			break;
		}
		/* fall through */
	default:
		snprintf(err, errlen, "a %s cannot be sent as JSON", luaL_typename(L, idx));
		return NULL;
	}
	if (j == NULL)
		snprintf(err, errlen, "out of memory");
	return j;
}

json_t *lh_json_from(lua_State *L, int idx, char *err, size_t errlen)
{
	err[0] = '\0';
	return from(L, lua_absindex(L, idx), 0, err, errlen);
}
