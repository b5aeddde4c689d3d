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

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Raised when the handler ABI changes incompatibly. */
#define TGRUN_ABI_VERSION 2	/* 2: struct tgrun_error has maybe_delivered */

/*
 * Declares the ABI the handler was built against; the worker checks it
 * before calling anything in the handler.
 */
#define TGRUN_HANDLER \
	__attribute__((visibility("default"))) \
	const unsigned int tgrun_handler_abi = TGRUN_ABI_VERSION

/*
 * The context of one fiber: the update it works for (if any) and its
 * cancellation. Valid until that fiber returns.
 */
struct tgrun_ctx;
/* The bot as seen by one worker process; valid from init to fini. */
struct tgrun_bot;

/* ---- exports of the handler ---------------------------------------------- */

/*
 * Required. Handle one update; return 0 when done, -1 when it failed. A
 * failed update is run again from the start (tgrun_attempt() says which
 * delivery it is), after a growing delay and in its place in its chat's
 * order, up to [limits] max_attempts; then it goes to the dead letters
 * with its last error (tgrun_fail). What the handler did before it failed
 * (messages sent...) is done again: make it idempotent, or check
 * tgrun_attempt(), or set max_attempts = 1 to never retry.
 */
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
	/*
	 * 1 when the request may have reached the Bot API and run although no
	 * answer said so (the connection broke after the request was written,
	 * a 5xx from the Bot API...). Such a call is not retried by itself
	 * unless the method only reads or [api] retry_ambiguous is on: a
	 * message may have been sent. 0 when it certainly did not run.
	 */
	int maybe_delivered;
	char description[256];
};

/*
 * Say why the update of `ctx` fails (printf format): the first line, up to
 * 240 bytes, goes to the log and, when no attempt is left, to the dead
 * letters (`tgrunctl dead-letters show`). Returns -1, so a handler can
 * `return tgrun_fail(ctx, "no such user %lld", id);`. Without it a failed
 * update reports the last error one of its tgrun_* calls returned, or
 * "handler returned -1". Does nothing for a fiber with no update.
 */
int tgrun_fail(struct tgrun_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * If the update of `ctx` fails (the handler returns -1), it goes to the dead
 * letters at once instead of being retried: for failures that another
 * attempt cannot fix, or after a call that may have run already
 * (err->maybe_delivered) when running it twice would be worse than not at
 * all. Does nothing for a fiber with no update.
 */
void tgrun_no_retry(struct tgrun_ctx *ctx);

/* ---- calling the Bot API ---------------------------------------------------- */

/*
 * Call Bot API `method` with `params` (a JSON object; stolen, may be NULL).
 * Returns the "result" as a new reference, or NULL with `err` filled (err
 * may be NULL). A call is retried only when sending it again cannot make
 * it run twice: a 429 after its retry_after when that is within
 * [api] retry_after_max; with backoff, up to [api] retries, when the
 * connection, proxy or TLS handshake failed before the request was written,
 * or a proxy answered 502, 503 or 504. A failure after the request may have
 * been written (connection lost, timeout, a 5xx from the Bot API) is
 * retried only for methods that read (get*), or for every method with
 * [api] retry_ambiguous = yes; otherwise it is returned at once with
 * err->maybe_delivered = 1. Other errors are returned at once. Each attempt is
 * bounded by [api] timeout. Yields until the answer arrives; other fibers
 * run meanwhile. Outside a fiber it fails at once with TGRUN_ERR_INVALID.
 * With [throttle] enabled, a method that sends a message (send* except
 * sendChatAction, copyMessage(s), forwardMessage(s)) first waits its turn
 * (yielding; before each attempt) so the flood limits hold across all
 * workers; if the update is cancelled meanwhile it fails with
 * TGRUN_ERR_CANCELLED.
 */
json_t *tgrun_call(struct tgrun_ctx *ctx, const char *method, json_t *params,
    struct tgrun_error *err);

/* sendMessage(chat_id, text). Returns the Message (new reference) or NULL. */
json_t *tgrun_send_text(struct tgrun_ctx *ctx, int64_t chat_id,
    const char *text, struct tgrun_error *err);

/*
 * Send `text` to the chat `update` came from: the chat the master ordered it
 * by (message, edited message, callback query's message, chat member update,
 * chat boost, reaction count...; README.md lists every type). NULL with a
 * TGRUN_ERR_INVALID error when the update has no chat.
 */
json_t *tgrun_reply(struct tgrun_ctx *ctx, const json_t *update,
    const char *text, struct tgrun_error *err);

/* ---- the update ------------------------------------------------------------- */

const json_t *tgrun_update(struct tgrun_ctx *ctx);	/* borrowed */
int64_t tgrun_update_id(struct tgrun_ctx *ctx);
/* 1 on the first delivery, 2 on the first retry, ... */
int tgrun_attempt(struct tgrun_ctx *ctx);
/*
 * "message", "callback_query", ...: the Update field the update carries. A
 * field newer than this worker's key table is returned by its name;
 * "unknown" when there is none.
 */
const char *tgrun_update_type(struct tgrun_ctx *ctx);
/*
 * The update's chat id and user id, the ones the master ordered it by (the
 * key table in README.md); 0 when the update has none.
 */
int64_t tgrun_chat_id(struct tgrun_ctx *ctx);
int64_t tgrun_user_id(struct tgrun_ctx *ctx);
struct tgrun_bot *tgrun_bot(struct tgrun_ctx *ctx);

/*
 * 1 once the update (or this fiber) was cancelled: update_timeout, shutdown,
 * fail-fast. Every yielding call then fails with a cancelled error.
 */
int tgrun_cancelled(struct tgrun_ctx *ctx);

/*
 * Wait `seconds` (fractions allowed) without blocking other fibers.
 * Returns 0, or -1 with errno ECANCELED.
 */
int tgrun_sleep(struct tgrun_ctx *ctx, double seconds);

/* ---- fibers: spawn, join, all -------------------------------------------- */

/* A function run on its own fiber: 0 means success, anything else failure. */
typedef int (*tgrun_fn)(struct tgrun_ctx *ctx, void *arg);
struct tgrun_fiber;

/* tgrun_spawn flags */
#define TGRUN_DETACHED 1	/* outlives the update; failures are logged */

/*
 * Run fn(child_ctx, arg) on a new fiber; it starts once the caller yields.
 * By default the child belongs to the update: the update is not done until
 * its children are, and cancelling the update cancels them. With
 * TGRUN_DETACHED it is background work that outlives the update and is
 * cancelled only at shutdown; a non-zero return is logged. The handle is
 * valid until the calling update ends (for spawns outside an update: until
 * the fiber ends). NULL when out of memory or outside a fiber.
 */
struct tgrun_fiber *tgrun_spawn(struct tgrun_ctx *ctx, tgrun_fn fn, void *arg,
    int flags);

/*
 * Wait up to `timeout` seconds (< 0: no limit) for `f` to finish and store
 * its return value in *ret (may be NULL). Yields. Returns 0, or -1 with errno
 * ETIMEDOUT (it goes on running), ECANCELED (the caller was cancelled), or
 * EINVAL.
 */
int tgrun_join(struct tgrun_ctx *ctx, struct tgrun_fiber *f, double timeout,
    int *ret);

/* tgrun_all flags */
#define TGRUN_ALL_SETTLED 0	/* a failure leaves the others alone (default) */
#define TGRUN_ALL_FAIL_FAST 1	/* the first failure cancels the rest */

enum tgrun_slot_status {
	TGRUN_SLOT_OK = 0,	/* fn returned 0 */
	TGRUN_SLOT_FAILED,	/* fn returned non-zero (in ret) */
	TGRUN_SLOT_CANCELLED,	/* cancelled: fail-fast, or the caller was cancelled */
	TGRUN_SLOT_TIMEOUT,	/* still running at the timeout, then cancelled */
};

struct tgrun_result {
	enum tgrun_slot_status status;
	int ret;		/* what fn returned */
};

/*
 * Run fns[i](ctx, args[i]) for i < n concurrently, each on its own fiber,
 * and wait for all of them (at most `timeout` seconds; < 0 = no limit).
 * results[i] describes slot i, in input order. Functions still running at
 * the timeout are cancelled and waited for, so args may live on the
 * caller's stack. Returns 0 when every slot is TGRUN_SLOT_OK, else -1.
 */
int tgrun_all(struct tgrun_ctx *ctx, size_t n, const tgrun_fn *fns,
    void *const *args, struct tgrun_result *results, int flags, double timeout);

/* ---- waiters ------------------------------------------------------------- */

struct tgrun_waiter;

/* A waiter that releases its wait after n tgrun_waiter_done() calls. */
struct tgrun_waiter *tgrun_waiter_new(struct tgrun_ctx *ctx, int n);
/*
 * Wait (yields) until done() was called n times, or `timeout` seconds
 * (< 0 = no limit). Returns 0, or -1 with errno ETIMEDOUT or ECANCELED.
 * Calls to done() made before the wait count.
 */
int tgrun_waiter_wait(struct tgrun_waiter *w, double timeout);
/*
 * Count one completion. Safe from any callback (libevent, hiredis...): it
 * only queues the wake-up. Returns 0, or -1 (errno EOVERFLOW, logged) when
 * called more than n times.
 */
int tgrun_waiter_done(struct tgrun_waiter *w);
/* Free the waiter; no done() may follow. */
void tgrun_waiter_free(struct tgrun_waiter *w);

/* ---- waiting on file descriptors, locks ------------------------------------ */

#define TGRUN_READ  1
#define TGRUN_WRITE 2

/*
 * Wait (yields) until `fd` is ready for `events` (TGRUN_READ | TGRUN_WRITE)
 * or `timeout` seconds pass (< 0 = no limit). Returns the ready events,
 * 0 on timeout, or -1 with errno ECANCELED or EINVAL.
 */
int tgrun_wait_fd(struct tgrun_ctx *ctx, int fd, int events, double timeout);

/*
 * A per-worker mutex named `key`, for fibers. Waits (yields) up to
 * `timeout` seconds (< 0 = no limit). Returns 0, or -1 with errno
 * ETIMEDOUT or ECANCELED. Locks are not re-entrant; a fiber that ends
 * holding a lock releases it (logged).
 */
int tgrun_lock(struct tgrun_ctx *ctx, const char *key, double timeout);
/* Release `key`; -1 with EPERM when the caller does not hold it. */
int tgrun_unlock(struct tgrun_ctx *ctx, const char *key);

/* ---- files and HTTP ------------------------------------------------------- */

/*
 * One file part of a multipart upload. From disk when `path` is set (read
 * when the request is sent, streamed, never loaded whole), else from memory:
 * `len` bytes at `data` (copied into the request; NULL with len 0 sends an
 * empty file). `field` is the form field: the method's parameter ("document",
 * "photo", ...) or the name used in an "attach://<name>" reference.
 * `filename` defaults to the last component of `path` (for memory parts to
 * `field`); `content_type` to what libcurl guesses from the file name, else
 * application/octet-stream. The worker only borrows the strings and data, for
 * the duration of the call.
 */
struct tgrun_file {
	const char *field;
	const char *path;
	const void *data;
	size_t len;
	const char *filename;
	const char *content_type;
};

/*
 * Call Bot API `method` (sendDocument, sendPhoto, sendMediaGroup...) as a
 * multipart/form-data POST of `params` (a JSON object; stolen, may be NULL)
 * plus the n parts in `files` (may be NULL when n is 0). String values of
 * params are sent as they are, JSON null is left out, every other value is
 * sent JSON-encoded (numbers, booleans, reply_markup, media arrays), as the
 * Bot API expects. Returns the "result" as a new reference, or NULL with
 * `err` filled (err may be NULL).
 *
 * Yields until the answer arrives. Retries as tgrun_call() does (429 within
 * [api] retry_after_max, 5xx and network errors with backoff up to [api]
 * retries, other errors at once), re-sending the files on each attempt, each
 * attempt bounded by [api] timeout, and waits its turn under [throttle] as
 * tgrun_call() does; errors are those of tgrun_call().
 * TGRUN_ERR_INVALID: outside a fiber, params not an object, a part without
 * field or with neither path nor data, a path that is not a readable
 * regular file (error_code = errno), out of memory.
 */
json_t *tgrun_upload(struct tgrun_ctx *ctx, const char *method, json_t *params,
    const struct tgrun_file *files, size_t n, struct tgrun_error *err);

/*
 * Download the file `file_id` to `path`: getFile (through tgrun_call(), with
 * its retries), then a GET of the file streamed into a new temporary file
 * "<path>.XXXXXX" (mode 0600) in the same directory, which is fsync()ed and
 * renamed over `path`, so `path` is replaced atomically or not at all: on any
 * failure the temporary file is removed and `path` is left as it was.
 * Returns 0, or -1 with `err` filled (may be NULL).
 *
 * Yields. 5xx and network errors of the download are retried with backoff
 * up to [api] retries; each attempt is bounded by [api] timeout (mind it for
 * large files). Errors: those of tgrun_call() for getFile (an unknown
 * file_id is TGRUN_ERR_API 400); TGRUN_ERR_API or TGRUN_ERR_NETWORK with the
 * HTTP status in error_code when the download is refused;
 * TGRUN_ERR_TIMEOUT, TGRUN_ERR_CANCELLED; TGRUN_ERR_INVALID outside a fiber,
 * for bad arguments, and for local file errors (cannot create, write, fsync
 * or rename: error_code is the errno).
 */
int tgrun_download(struct tgrun_ctx *ctx, const char *file_id, const char *path,
    struct tgrun_error *err);

/*
 * A plain HTTP request to another service. `method` is "GET", "POST",
 * "PUT", "DELETE", "HEAD", ... (NULL: "GET"); `url` must be http:// or
 * https://; `headers` is a NULL-terminated array of "Name: value" lines (may
 * be NULL); `body_len` bytes at `body` are sent when body is not NULL (a POST
 * without a Content-Type header is sent as
 * application/x-www-form-urlencoded, libcurl's default). `timeout` bounds the
 * whole request in seconds (0: [api] timeout). Redirects are not followed.
 * The worker borrows everything for the duration of the call.
 */
struct tgrun_http_request {
	const char *method;
	const char *url;
	const char *const *headers;
	const void *body;
	size_t body_len;
	double timeout;
};

/*
 * The answer: any HTTP status, 4xx and 5xx included, is a response, not an
 * error. `body` is malloc'd and NUL-terminated (body_len excludes the NUL;
 * never NULL after success); `content_type` is malloc'd or NULL when the
 * server sent none. Both belong to the caller: tgrun_http_response_free().
 */
struct tgrun_http_response {
	int status;
	char *body;
	size_t body_len;
	char *content_type;
};

/*
 * Run `req` on the worker's curl multi; yields until it finished, other
 * fibers run meanwhile. No retries. Returns 0 with *resp filled, or -1 with
 * `err` filled (may be NULL) and *resp zeroed: TGRUN_ERR_NETWORK (connection
 * refused, DNS, TLS, a body over 64 MiB...), TGRUN_ERR_TIMEOUT,
 * TGRUN_ERR_CANCELLED, TGRUN_ERR_INVALID (outside a fiber, no URL or not
 * http/https, a header or method with CR/LF, out of memory). The URL is never
 * logged.
 */
int tgrun_http(struct tgrun_ctx *ctx, const struct tgrun_http_request *req,
    struct tgrun_http_response *resp, struct tgrun_error *err);

/* Free what tgrun_http() put in *resp and zero it; resp may be NULL. */
void tgrun_http_response_free(struct tgrun_http_response *resp);

/* ---- the bot -------------------------------------------------------------- */

/* Value of `key` in the config's [handler] section, NULL if absent. */
const char *tgrun_config(struct tgrun_bot *bot, const char *key);
/* This worker's slot (0..count-1) and the number of workers. */
int tgrun_worker_index(struct tgrun_bot *bot);
int tgrun_worker_count(struct tgrun_bot *bot);

/*
 * Run fn(ctx, arg) every `interval` seconds on its own fiber, in this
 * worker, until shutdown. Call it from tgrun_init(); use
 * tgrun_worker_index() == 0 to run a job in exactly one worker.
 * Returns 0 or -1.
 */
int tgrun_every(struct tgrun_bot *bot, double interval, tgrun_fn fn, void *arg);

/*
 * The worker's libevent loop, for non-blocking clients (hiredis, libpq...)
 * whose callbacks then wake fibers through waiters.
 */
struct event_base;
struct event_base *tgrun_event_base(struct tgrun_bot *bot);

/*
 * Log a line through the daemon's logger (level: 3 error .. 7 debug). It
 * stays one line: newlines and other control characters in the text are
 * written escaped (\n, \t, \xHH).
 */
void tgrun_log(struct tgrun_bot *bot, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif
#endif
