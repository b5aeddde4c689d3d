/* lua.so: the ctx object a handler gets, and its calls (Bot API, HTTP, files, sleep, locks). */
#include "lh.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

/* ---- errors --------------------------------------------------------------------- */

static const char *kind_name(enum tgrun_error_kind k)
{
	switch (k) {
	case TGRUN_ERR_API: return "api";
	case TGRUN_ERR_NETWORK: return "network";
	case TGRUN_ERR_CANCELLED: return "cancelled";
	case TGRUN_ERR_TIMEOUT: return "timeout";
	default: return "invalid";
	}
}

int lh_push_err(lua_State *L, const char *kind, int code, int retry_after,
    int maybe_delivered, const char *desc)
{
	lua_pushnil(L);
	lua_createtable(L, 0, 5);
	lua_pushstring(L, kind);
	lua_setfield(L, -2, "kind");
	lua_pushinteger(L, code);
	lua_setfield(L, -2, "code");
	lua_pushstring(L, desc);
	lua_setfield(L, -2, "description");
	lua_pushinteger(L, retry_after);
	lua_setfield(L, -2, "retry_after");
	lua_pushboolean(L, maybe_delivered);
	lua_setfield(L, -2, "maybe_delivered");
	luaL_setmetatable(L, LH_ERR_MT);
	return 2;
}

int lh_push_tgrun_err(lua_State *L, const struct tgrun_error *err)
{
	return lh_push_err(L, kind_name(err->kind), err->error_code, err->retry_after,
	    err->maybe_delivered, err->description);
}

/* Errors from errno-style calls (sleep, lock, waiters). */
static int push_errno_err(lua_State *L, int e, const char *what)
{
	char desc[128];

	if (e == ECANCELED)
		return lh_push_err(L, "cancelled", 0, 0, 0, "the update was cancelled");
	if (e == ETIMEDOUT) {
		snprintf(desc, sizeof(desc), "%s: timed out", what);
		return lh_push_err(L, "timeout", 0, 0, 0, desc);
	}
	snprintf(desc, sizeof(desc), "%s: %s", what, strerror(e));
	return lh_push_err(L, "invalid", 0, 0, 0, desc);
}

/* tostring(err): "api error 400: Bad Request: chat not found" */
static int err_tostring(lua_State *L)
{
	lua_getfield(L, 1, "kind");
	lua_getfield(L, 1, "code");
	lua_getfield(L, 1, "description");
	if (lua_tointeger(L, -2) != 0)
		lua_pushfstring(L, "%s error %d: %s", luaL_optstring(L, -3, "?"),
		    (int)lua_tointeger(L, -2), luaL_optstring(L, -1, ""));
	else
		lua_pushfstring(L, "%s error: %s", luaL_optstring(L, -3, "?"),
		    luaL_optstring(L, -1, ""));
	return 1;
}

double lh_seconds(lua_State *L, int idx, double def)
{
	double s;

	if (lua_isnoneornil(L, idx) && !isnan(def))
		return def;
	s = luaL_checknumber(L, idx);
	luaL_argcheck(L, !isnan(s), idx, "seconds expected, got NaN");
	return s > 1e9 ? 1e9 : s;
}

/* ---- JSON owned by C, handed to Lua without leaking on a Lua error ---------- */

static int push_json_k(lua_State *L)
{
	const json_t *j = lua_touserdata(L, 1);

	lua_pop(L, 1);
	lh_json_push(L, j);
	return 1;
}

/* Push `j` (a new reference, dropped here); a Lua error is raised after the drop. */
static int push_json_owned(lua_State *L, json_t *j)
{
	int st;

	lua_pushcfunction(L, push_json_k);
	lua_pushlightuserdata(L, j);
	st = lua_pcall(L, 1, 1, 0);
	json_decref(j);
	if (st != LUA_OK)
		lua_error(L);
	return 1;
}

/* The Lua value at idx as JSON (nil: NULL), or a Lua error naming `what`. */
static json_t *check_json(lua_State *L, int idx, const char *what, int object)
{
	char err[200];
	json_t *j;

	if (lua_isnoneornil(L, idx))
		return NULL;
	if (object)
		luaL_checktype(L, idx, LUA_TTABLE);
	j = lh_json_from(L, idx, err, sizeof(err));
	if (j == NULL)
		luaL_error(L, "%s: %s", what, err);
	if (object && !json_is_object(j)) {
		json_decref(j);
		luaL_error(L, "%s: a table with string keys is expected", what);
	}
	return j;
}

/* ---- the ctx object ---------------------------------------------------------------- */

struct lh_ctxud *lh_ctx_push(lua_State *L, struct tgrun_ctx *ctx)
{
	struct lh_ctxud *c = lua_newuserdatauv(L, sizeof(*c), 1);

	c->ctx = ctx;
	luaL_setmetatable(L, LH_CTX_MT);
	return c;
}

struct tgrun_ctx *lh_ctx_check(lua_State *L, int idx)
{
	struct lh_ctxud *c = luaL_checkudata(L, idx, LH_CTX_MT);

	if (c->ctx == NULL)
		luaL_error(L, "this ctx belongs to a function that has returned; use the "
		    "ctx your function was given");
	return c->ctx;
}

void lh_ctx_set_update(lua_State *L, int ctx_idx, int table_idx)
{
	lua_pushvalue(L, table_idx);
	lua_setiuservalue(L, ctx_idx, 1);
}

/* ctx.update: the decoded update, made on first use by a spawned fiber. */
static void push_update(lua_State *L, struct tgrun_ctx *ctx)
{
	const json_t *u;

	if (lua_getiuservalue(L, 1, 1) != LUA_TNIL)
		return;
	lua_pop(L, 1);
	if ((u = tgrun_update(ctx)) == NULL) {
		lua_pushnil(L);
		return;
	}
	lh_json_push(L, u);
	lh_ctx_set_update(L, 1, -1);
}

static int ctx_index(lua_State *L)
{
	struct tgrun_ctx *ctx;
	const char *k;

	lua_pushvalue(L, 2);
	if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
		return 1;		/* a method */
	ctx = lh_ctx_check(L, 1);
	k = lua_tostring(L, 2);
	if (k == NULL)
		lua_pushnil(L);
	else if (strcmp(k, "update") == 0)
		push_update(L, ctx);
	else if (strcmp(k, "update_id") == 0)
		lua_pushinteger(L, tgrun_update_id(ctx));
	else if (strcmp(k, "chat_id") == 0)
		lua_pushinteger(L, tgrun_chat_id(ctx));
	else if (strcmp(k, "user_id") == 0)
		lua_pushinteger(L, tgrun_user_id(ctx));
	else if (strcmp(k, "attempt") == 0)
		lua_pushinteger(L, tgrun_attempt(ctx));
	else if (strcmp(k, "update_type") == 0)
		lua_pushstring(L, tgrun_update_type(ctx));
	else
		lua_pushnil(L);
	return 1;
}

static int ctx_tostring(lua_State *L)
{
	struct lh_ctxud *c = luaL_checkudata(L, 1, LH_CTX_MT);

	if (c->ctx == NULL)
		lua_pushliteral(L, "ctx (ended)");
	else if (tgrun_update_id(c->ctx) != 0)
		lua_pushfstring(L, "ctx (update %I)", (lua_Integer)tgrun_update_id(c->ctx));
	else
		lua_pushliteral(L, "ctx (background)");
	return 1;
}

/* ---- Bot API calls --------------------------------------------------------------- */

/* ctx:call(method [, params]) -> result | nil, err */
static int l_call(lua_State *L)
{
	struct tgrun_ctx *ctx = lh_ctx_check(L, 1);
	const char *method = luaL_checkstring(L, 2);
	json_t *params = check_json(L, 3, "ctx:call params", 1), *res;
	struct tgrun_error err;

	res = tgrun_call(ctx, method, params, &err);
	if (res == NULL)
		return lh_push_tgrun_err(L, &err);
	return push_json_owned(L, res);
}

/* ctx:send_text(chat_id, text) -> message | nil, err */
static int l_send_text(lua_State *L)
{
	struct tgrun_ctx *ctx = lh_ctx_check(L, 1);
	lua_Integer chat = luaL_checkinteger(L, 2);
	const char *text = luaL_checkstring(L, 3);
	struct tgrun_error err;
	json_t *res = tgrun_send_text(ctx, (int64_t)chat, text, &err);

	if (res == NULL)
		return lh_push_tgrun_err(L, &err);
	return push_json_owned(L, res);
}

/* ctx:reply(text [, params]) -> message | nil, err: sendMessage to the update's chat. */
static int l_reply(lua_State *L)
{
	struct tgrun_ctx *ctx = lh_ctx_check(L, 1);
	const char *text = luaL_checkstring(L, 2);
	json_t *params, *res, *t;
	struct tgrun_error err;

	if (lua_isnoneornil(L, 3)) {
		res = tgrun_reply(ctx, tgrun_update(ctx), text, &err);
	} else {
		params = check_json(L, 3, "ctx:reply params", 1);
		if (tgrun_chat_id(ctx) == 0 && json_object_get(params, "chat_id") == NULL) {
			json_decref(params);
			return lh_push_err(L, "invalid", 0, 0, 0, "the update has no chat");
		}
		if (json_object_get(params, "chat_id") == NULL)
			json_object_set_new(params, "chat_id",
			    json_integer((json_int_t)tgrun_chat_id(ctx)));
		if ((t = json_string(text)) == NULL || json_object_set_new(params, "text", t)) {
			json_decref(params);
			return luaL_error(L, "ctx:reply: text is not UTF-8");
		}
		res = tgrun_call(ctx, "sendMessage", params, &err);
	}
	if (res == NULL)
		return lh_push_tgrun_err(L, &err);
	return push_json_owned(L, res);
}

/* ---- sleep, cancellation, locks ------------------------------------------------------ */

/* ctx:sleep(seconds) -> true | nil, err (cancelled) */
static int l_sleep(lua_State *L)
{
	struct tgrun_ctx *ctx = lh_ctx_check(L, 1);
	double s = lh_seconds(L, 2, NAN);

	if (tgrun_sleep(ctx, s) != 0)
		return push_errno_err(L, errno, "ctx:sleep");
	lua_pushboolean(L, 1);
	return 1;
}

/* ctx:no_retry(): if the update fails, it is dead-lettered, not retried */
static int l_no_retry(lua_State *L)
{
	tgrun_no_retry(lh_ctx_check(L, 1));
	return 0;
}

static int l_cancelled(lua_State *L)
{
	lua_pushboolean(L, tgrun_cancelled(lh_ctx_check(L, 1)));
	return 1;
}

/* A held lock: unlock() or going out of scope (local l <close> = ...) releases it. */
struct lh_lock {
	int held;
};

/* ctx:lock(key [, timeout]) -> lock | nil, err */
static int l_lock(lua_State *L)
{
	struct tgrun_ctx *ctx = lh_ctx_check(L, 1);
	const char *key = luaL_checkstring(L, 2);
	double timeout = lh_seconds(L, 3, -1);
	struct lh_lock *k = lua_newuserdatauv(L, sizeof(*k), 2);

	k->held = 0;
	luaL_setmetatable(L, LH_LOCK_MT);
	lua_pushvalue(L, 1);
	lua_setiuservalue(L, -2, 1);
	lua_pushvalue(L, 2);
	lua_setiuservalue(L, -2, 2);
	if (tgrun_lock(ctx, key, timeout) != 0) {
		if (errno == EDEADLK)
			return lh_push_err(L, "invalid", 0, 0, 0,
			    "ctx:lock: this fiber holds the lock already");
		return push_errno_err(L, errno, "ctx:lock");
	}
	k->held = 1;
	return 1;
}

/* ctx:unlock(key) -> true | nil, err */
static int l_unlock(lua_State *L)
{
	struct tgrun_ctx *ctx = lh_ctx_check(L, 1);

	if (tgrun_unlock(ctx, luaL_checkstring(L, 2)) != 0)
		return lh_push_err(L, "invalid", 0, 0, 0, "ctx:unlock: not held by this fiber");
	lua_pushboolean(L, 1);
	return 1;
}

/* lock:unlock(), and __close: release once, if its fiber still runs. */
static int lock_release(lua_State *L)
{
	struct lh_lock *k = luaL_checkudata(L, 1, LH_LOCK_MT);
	struct lh_ctxud *c;

	if (!k->held) {
		lua_pushboolean(L, 0);
		return 1;
	}
	k->held = 0;
	lua_getiuservalue(L, 1, 1);
	lua_getiuservalue(L, 1, 2);
	c = lua_touserdata(L, -2);
	lua_pushboolean(L, c != NULL && c->ctx != NULL &&
	    tgrun_unlock(c->ctx, lua_tostring(L, -1)) == 0);
	return 1;
}

/* ---- HTTP and files ------------------------------------------------------------------ */

static int push_response_k(lua_State *L)
{
	const struct tgrun_http_response *r = lua_touserdata(L, 1);

	lua_createtable(L, 0, 3);
	lua_pushinteger(L, r->status);
	lua_setfield(L, -2, "status");
	lua_pushlstring(L, r->body, r->body_len);
	lua_setfield(L, -2, "body");
	if (r->content_type != NULL) {
		lua_pushstring(L, r->content_type);
		lua_setfield(L, -2, "content_type");
	}
	return 1;
}

/* Anchor the string field `k` of the table at `t` on the stack; NULL if absent. */
static const char *opt_field(lua_State *L, int t, const char *k, size_t *len)
{
	int type = lua_getfield(L, t, k);

	if (type == LUA_TNIL) {
		lua_pop(L, 1);
		return NULL;
	}
	if (type != LUA_TSTRING && type != LUA_TNUMBER)
		luaL_error(L, "field \"%s\": a string is expected, got %s", k,
		    luaL_typename(L, -1));
	return lua_tolstring(L, -1, len);
}

/*
 * ctx:http{url=, method=, headers=, body= | json=, timeout=} or ctx:http(url)
 * -> {status=, body=, content_type=} | nil, err. Every string the worker
 * borrows stays anchored on this function's stack while it yields.
 */
static int l_http(lua_State *L)
{
	struct tgrun_ctx *ctx = lh_ctx_check(L, 1);
	struct tgrun_http_request req = { 0 };
	struct tgrun_http_response resp;
	struct tgrun_error err;
	const char **hdrs;
	char *jbody = NULL, jerr[200];
	size_t nh = 0, i = 0;
	int st, rc;

	if (lua_type(L, 2) == LUA_TSTRING) {
		req.url = lua_tostring(L, 2);
		lua_settop(L, 2);
		lua_newtable(L);
		lua_pushvalue(L, 2);
		lua_setfield(L, 3, "url");
		lua_replace(L, 2);
	}
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_settop(L, 2);
	req.url = opt_field(L, 2, "url", NULL);
	req.method = opt_field(L, 2, "method", NULL);
	req.body = opt_field(L, 2, "body", &req.body_len);
	if (lua_getfield(L, 2, "timeout") != LUA_TNIL)
		req.timeout = lh_seconds(L, -1, NAN);
	if (req.url == NULL)
		return luaL_error(L, "ctx:http: no url");
	/* headers: {["Name"] = "value"} or {"Name: value", ...} */
	if (lua_getfield(L, 2, "headers") == LUA_TTABLE) {
		int ht = lua_gettop(L), anchor;

		lua_pushnil(L);
		while (lua_next(L, ht) != 0) {
			lua_pop(L, 1);
			nh++;
		}
		lua_createtable(L, (int)nh, 0);
		anchor = lua_gettop(L);
		hdrs = lua_newuserdatauv(L, (nh + 2) * sizeof(*hdrs), 0);
		lua_pushnil(L);
		while (i < nh && lua_next(L, ht) != 0) {
			luaL_tolstring(L, -1, NULL);
			if (lua_type(L, -3) == LUA_TSTRING) {
				lua_pushfstring(L, "%s: %s", lua_tostring(L, -3),
				    lua_tostring(L, -1));
				lua_remove(L, -2);
			}
			hdrs[i++] = lua_tostring(L, -1);
			lua_rawseti(L, anchor, (lua_Integer)i);	/* keeps it alive */
			lua_pop(L, 1);
		}
	} else {
		hdrs = lua_newuserdatauv(L, 2 * sizeof(*hdrs), 0);
	}
	if (lua_getfield(L, 2, "json") != LUA_TNIL) {
		json_t *j = lh_json_from(L, -1, jerr, sizeof(jerr));

		if (j == NULL)
			return luaL_error(L, "ctx:http json: %s", jerr);
		hdrs[i++] = "Content-Type: application/json";
		jbody = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		if (jbody == NULL)
			return luaL_error(L, "ctx:http json: out of memory");
		req.body = jbody;
		req.body_len = strlen(jbody);
	}
	hdrs[i] = NULL;
	req.headers = hdrs;
	/* Nothing below raises before jbody is freed. */
	rc = tgrun_http(ctx, &req, &resp, &err);
	free(jbody);
	if (rc != 0)
		return lh_push_tgrun_err(L, &err);
	lua_pushcfunction(L, push_response_k);
	lua_pushlightuserdata(L, &resp);
	st = lua_pcall(L, 1, 1, 0);
	tgrun_http_response_free(&resp);
	if (st != LUA_OK)
		return lua_error(L);
	return 1;
}

/* ctx:upload(method, params, files) -> result | nil, err */
static int l_upload(lua_State *L)
{
	struct tgrun_ctx *ctx = lh_ctx_check(L, 1);
	const char *method = luaL_checkstring(L, 2);
	struct tgrun_file *files;
	struct tgrun_error err;
	json_t *params, *res;
	size_t n;

	if (!lua_isnoneornil(L, 3))
		luaL_checktype(L, 3, LUA_TTABLE);
	luaL_checktype(L, 4, LUA_TTABLE);
	lua_settop(L, 4);
	n = lua_rawlen(L, 4);
	files = lua_newuserdatauv(L, (n ? n : 1) * sizeof(*files), 0);
	luaL_checkstack(L, (int)(6 * n) + 8, "ctx:upload files");
	for (size_t i = 0; i < n; i++) {
		int ft;

		if (lua_rawgeti(L, 4, (lua_Integer)i + 1) != LUA_TTABLE)
			return luaL_error(L, "ctx:upload: files[%d] is not a table", (int)i + 1);
		ft = lua_gettop(L);
		memset(&files[i], 0, sizeof(files[i]));
		files[i].field = opt_field(L, ft, "field", NULL);
		files[i].path = opt_field(L, ft, "path", NULL);
		files[i].data = opt_field(L, ft, "data", &files[i].len);
		files[i].filename = opt_field(L, ft, "filename", NULL);
		files[i].content_type = opt_field(L, ft, "content_type", NULL);
	}
	/* Last: nothing may raise between here and the call that takes it. */
	params = lua_isnil(L, 3) ? NULL : check_json(L, 3, "ctx:upload params", 1);
	res = tgrun_upload(ctx, method, params, files, n, &err);
	if (res == NULL)
		return lh_push_tgrun_err(L, &err);
	return push_json_owned(L, res);
}

/* ctx:download(file_id, path) -> true | nil, err */
static int l_download(lua_State *L)
{
	struct tgrun_ctx *ctx = lh_ctx_check(L, 1);
	const char *file_id = luaL_checkstring(L, 2), *path = luaL_checkstring(L, 3);
	struct tgrun_error err;

	if (tgrun_download(ctx, file_id, path, &err) != 0)
		return lh_push_tgrun_err(L, &err);
	lua_pushboolean(L, 1);
	return 1;
}

void lh_ctx_open(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{ "call", l_call }, { "reply", l_reply }, { "send_text", l_send_text },
		{ "sleep", l_sleep }, { "cancelled", l_cancelled }, { "no_retry", l_no_retry },
		{ "lock", l_lock }, { "unlock", l_unlock },
		{ "http", l_http }, { "upload", l_upload }, { "download", l_download },
		{ "spawn", lh_ctx_spawn }, { "join", lh_ctx_join }, { "all", lh_ctx_all },
		{ "waiter", lh_ctx_waiter },
		{ NULL, NULL },
	};
	static const luaL_Reg lock_methods[] = {
		{ "unlock", lock_release }, { NULL, NULL },
	};

	luaL_newmetatable(L, LH_CTX_MT);
	luaL_newlib(L, methods);
	lua_pushcclosure(L, ctx_index, 1);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, ctx_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pushliteral(L, "ctx");
	lua_setfield(L, -2, "__name");
	lua_pop(L, 1);

	luaL_newmetatable(L, LH_ERR_MT);
	lua_pushcfunction(L, err_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pop(L, 1);

	luaL_newmetatable(L, LH_LOCK_MT);
	luaL_newlib(L, lock_methods);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, lock_release);
	lua_setfield(L, -2, "__close");
	lua_pop(L, 1);
}
