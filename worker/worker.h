/* A worker process: its settings from the master, the handler, the update being run. */
#ifndef TGRUN_WORKER_H
#define TGRUN_WORKER_H

#include <stdint.h>
#include <jansson.h>

#include "botapi.h"
#include "handler.h"

/* Settings the master sends in the CONFIG frame. */
struct worker_settings {
	int slot, count, generation;
	char *handler_path;
	char *api_url;
	char *token;
	long api_timeout_ms;
	int api_retries;
	long retry_after_max_ms;
	json_t *handler_kv;	/* object of [handler] keys */
};

struct tgrun_bot {
	struct worker_settings set;
	struct handler h;
	struct botapi_req api;	/* one keep-alive connection to the Bot API */
};

struct tgrun_ctx {
	struct tgrun_bot *bot;
	json_t *update;
	int64_t update_id;
	int attempt;
	const char *type;
	int64_t chat_id, user_id;
	int cancelled;
};

int settings_from_json(struct worker_settings *s, const json_t *j,
    char *err, size_t errlen) __attribute__((warn_unused_result));
void settings_free(struct worker_settings *s);

/* Fill the derived fields of ctx from its update. */
void ctx_describe(struct tgrun_ctx *ctx);

#endif
