/*
 * tgrun.h - the handler API of tgrun.
 *
 * A handler is a shared object loaded by each tgrun worker process. It must
 * contain, at file scope:
 *
 *     #include <tgrun.h>
 *     TGRUN_HANDLER;
 *
 *     int tgrun_handle(struct tgrun_ctx *ctx, const json_t *update)
 *     {
 *             return tgrun_reply(ctx, update, "hello", NULL) ? 0 : -1;
 *     }
 *
 * and may export tgrun_init() and tgrun_fini(). Build it with
 *     cc -shared -fPIC -Wl,-z,noexecstack $(pkg-config --cflags tgrun) -o h.so h.c
 * The symbols the handler calls (tgrun_*) are provided by the worker at load
 * time; do not link against anything for them.
 *
 * Ownership follows jansson: "steals" means the function takes over the
 * caller's reference; "new reference" means the caller must json_decref().
 */
#ifndef TGRUN_H
#define TGRUN_H

#include <stdint.h>
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Raised when the handler ABI changes incompatibly. */
#define TGRUN_ABI_VERSION 1

/*
 * Declares the ABI the handler was built against; the worker checks it
 * before calling anything in the handler.
 */
#define TGRUN_HANDLER \
	__attribute__((visibility("default"))) \
	const unsigned int tgrun_handler_abi = TGRUN_ABI_VERSION

/* One update being handled. Valid only during tgrun_handle(). */
struct tgrun_ctx;
/* The bot as seen by one worker process; valid from init to fini. */
struct tgrun_bot;

/* ---- exports of the handler ---------------------------------------------- */

/* Required. Handle one update; return 0 when done, -1 when it failed. */
int tgrun_handle(struct tgrun_ctx *ctx, const json_t *update);
/* Optional. Run once per worker before any update; non-zero stops the daemon. */
int tgrun_init(struct tgrun_bot *bot);
/* Optional. Run once when the worker stops normally. */
void tgrun_fini(struct tgrun_bot *bot);

/* ---- errors --------------------------------------------------------------- */

enum tgrun_error_kind {
	TGRUN_ERR_NONE = 0,
	TGRUN_ERR_API,		/* the Bot API answered ok=false */
	TGRUN_ERR_NETWORK,	/* no Bot API answer: connection, HTTP, bad body */
	TGRUN_ERR_CANCELLED,	/* the update was cancelled (timeout, shutdown) */
	TGRUN_ERR_TIMEOUT,	/* the call did not finish within [api] timeout */
	TGRUN_ERR_INVALID,	/* bad arguments, or a call made where it cannot be */
};

struct tgrun_error {
	enum tgrun_error_kind kind;
	int error_code;		/* Bot API error_code (or HTTP status), else 0 */
	int retry_after;	/* seconds, from a 429's parameters, else 0 */
	char description[256];
};

/* ---- calling the Bot API ---------------------------------------------------- */

/*
 * Call Bot API `method` with `params` (a JSON object; stolen, may be NULL).
 * Returns the "result" as a new reference, or NULL with `err` filled (err
 * may be NULL). A 429 is retried after its retry_after when that is within
 * [api] retry_after_max; 5xx and network errors are retried with backoff up
 * to [api] retries; other errors are returned at once. Each attempt is
 * bounded by [api] timeout. The calling update waits for the answer.
 */
json_t *tgrun_call(struct tgrun_ctx *ctx, const char *method, json_t *params,
    struct tgrun_error *err);

/* sendMessage(chat_id, text). Returns the Message (new reference) or NULL. */
json_t *tgrun_send_text(struct tgrun_ctx *ctx, int64_t chat_id,
    const char *text, struct tgrun_error *err);

/*
 * Send `text` to the chat `update` came from (message, edited message,
 * callback query's message, chat member update...). NULL with a
 * TGRUN_ERR_INVALID error when the update has no chat.
 */
json_t *tgrun_reply(struct tgrun_ctx *ctx, const json_t *update,
    const char *text, struct tgrun_error *err);

/* ---- the update ------------------------------------------------------------- */

const json_t *tgrun_update(struct tgrun_ctx *ctx);	/* borrowed */
int64_t tgrun_update_id(struct tgrun_ctx *ctx);
/* 1 on the first delivery, 2 on the first retry, ... */
int tgrun_attempt(struct tgrun_ctx *ctx);
/* "message", "callback_query", ... */
const char *tgrun_update_type(struct tgrun_ctx *ctx);
/* The update's chat id and user id; 0 when the update has none. */
int64_t tgrun_chat_id(struct tgrun_ctx *ctx);
int64_t tgrun_user_id(struct tgrun_ctx *ctx);
struct tgrun_bot *tgrun_bot(struct tgrun_ctx *ctx);

/* 1 once the update was cancelled (timeout, shutdown), else 0. */
int tgrun_cancelled(struct tgrun_ctx *ctx);

/* Wait `seconds` (fractions allowed). 0, or -1 with errno ECANCELED. */
int tgrun_sleep(struct tgrun_ctx *ctx, double seconds);

/* ---- the bot -------------------------------------------------------------- */

/* Value of `key` in the config's [handler] section, NULL if absent. */
const char *tgrun_config(struct tgrun_bot *bot, const char *key);
/* This worker's slot (0..count-1) and the number of workers. */
int tgrun_worker_index(struct tgrun_bot *bot);
int tgrun_worker_count(struct tgrun_bot *bot);

/* Log a line through the daemon's logger (level: 3 error .. 7 debug). */
void tgrun_log(struct tgrun_bot *bot, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif
#endif
