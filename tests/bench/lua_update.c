/*
 * lua_update.c - what lua.so adds to an update, measured alone (no network,
 * no other process): make a run's ctx object, decode the update into a
 * table, run an echo handler that builds its sendMessage parameters as a
 * Lua table, encode them as JSON, decode the returned Message into a table,
 * and collect the garbage; against the C handler's share of the same work
 * (json_pack of the parameters, dropping the answer). Prints CPU time per
 * update of each and the difference, for the incremental and the
 * generational collector.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <lauxlib.h>
#include <lualib.h>

#include "lh.h"

#define N 200000

static const char update_src[] =
    "{\"update_id\":5001,\"message\":{\"message_id\":77,\"from\":{\"id\":100042,"
    "\"is_bot\":false,\"first_name\":\"User42\",\"language_code\":\"en\"},\"chat\":"
    "{\"id\":100042,\"type\":\"private\",\"first_name\":\"User42\"},\"date\":1700000000,"
    "\"text\":\"Hello there, this is a message of an ordinary length for a chat.\"}}";

static const char result_src[] =
    "{\"message_id\":78,\"from\":{\"id\":123456789,\"is_bot\":true,\"first_name\":\"Fake\","
    "\"username\":\"fakebot\"},\"chat\":{\"id\":100042,\"type\":\"private\",\"first_name\":"
    "\"User42\"},\"date\":1700000001,\"text\":\"Hello there, this is a message of an "
    "ordinary length for a chat.\",\"reply_to_message\":{\"message_id\":77,\"from\":"
    "{\"id\":100042,\"is_bot\":false,\"first_name\":\"User42\"},\"chat\":{\"id\":100042,"
    "\"type\":\"private\",\"first_name\":\"User42\"},\"date\":1700000000,\"text\":\"Hello "
    "there, this is a message of an ordinary length for a chat.\"}}";

static const char handler_src[] =
    "return function(ctx, msg)\n"
    "  if not msg.text then return end\n"
    "  local sent, err = ctx:reply(msg.text, {\n"
    "    reply_parameters = { message_id = msg.message_id },\n"
    "  })\n"
    "  return sent, err\n"
    "end\n";

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ctx:reply(text, params): encode as lua.so does, answer with a decoded Message. */
static int l_reply(lua_State *L)
{
	char err[200];
	json_t *p = lh_json_from(L, 3, err, sizeof(err)), *res;
	char *body;

	json_object_set_new(p, "chat_id", json_integer(100042));
	json_object_set_new(p, "text", json_string(luaL_checkstring(L, 2)));
	body = json_dumps(p, JSON_COMPACT);	/* the request body, as tgrun_call does */
	free(body);
	json_decref(p);
	res = json_loads(result_src, 0, NULL);
	lh_json_push(L, res);
	json_decref(res);
	return 1;
}

/* The C handler's share: the same parameters with json_pack, the answer dropped. */
static double run_c(const json_t *update)
{
	double t0 = cpu_now();

	for (int i = 0; i < N; i++) {
		const json_t *msg = json_object_get(update, "message");
		json_t *p = json_pack("{s:I, s:s, s:{s:O}}", "chat_id", (json_int_t)100042,
		    "text", json_string_value(json_object_get(msg, "text")),
		    "reply_parameters", "message_id", json_object_get(msg, "message_id"));
		char *body = json_dumps(p, JSON_COMPACT);
		json_t *res = json_loads(result_src, 0, NULL);

		free(body);
		json_decref(p);
		json_decref(res);
	}
	return (cpu_now() - t0) / N;
}

static double run_lua(const json_t *update, int generational)
{
	lua_State *L = luaL_newstate(), *T;
	double t0;

	luaL_openlibs(L);
	if (generational)
		lua_gc(L, LUA_GCGEN, 0, 0);
	luaL_newmetatable(L, "bench.ctx");
	lua_newtable(L);
	lua_pushcfunction(L, l_reply);
	lua_setfield(L, -2, "reply");
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
	if (luaL_dostring(L, handler_src) != LUA_OK) {
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
		exit(1);
	}
	lua_setglobal(L, "handler");
	T = lua_newthread(L);		/* lua.so reuses its threads too */
	t0 = cpu_now();
	for (int i = 0; i < N; i++) {
		lua_getglobal(T, "handler");
		lua_newuserdatauv(T, sizeof(void *), 1);	/* the ctx object */
		luaL_setmetatable(T, "bench.ctx");
		lh_json_push(T, update);
		lua_getfield(T, -1, "message");
		lua_remove(T, -2);
		if (lua_pcall(T, 2, 2, 0) != LUA_OK) {
			fprintf(stderr, "%s\n", lua_tostring(T, -1));
			exit(1);
		}
		lua_settop(T, 0);
	}
	t0 = (cpu_now() - t0) / N;
	lua_close(L);
	return t0;
}

int main(void)
{
	json_t *update = json_loads(update_src, 0, NULL);
	double c = run_c(update), inc = run_lua(update, 0), gen = run_lua(update, 1);

	printf("per update, %d updates: C handler's share %.2f us; lua.so's %.2f us "
	    "(incremental GC), %.2f us (generational GC): Lua adds %.2f us / %.2f us\n",
	    N, c * 1e6, inc * 1e6, gen * 1e6, (inc - c) * 1e6, (gen - c) * 1e6);
	json_decref(update);
	return 0;
}
