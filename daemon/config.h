/* The bot's INI config: parsing, validation and defaults. */
#ifndef TGRUN_CONFIG_H
#define TGRUN_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* Sequencing keys (bit set). CFG_SEQ_NONE is the empty set. */
enum {
	CFG_SEQ_NONE = 0,
	CFG_SEQ_CHAT = 1 << 0,
	CFG_SEQ_USER = 1 << 1,
	CFG_SEQ_CHAT_THREAD = 1 << 2,
};

enum cfg_sync { CFG_SYNC_OFF, CFG_SYNC_NORMAL, CFG_SYNC_FULL };

/* A rate "N/s" or "N/m": n events per period_ms. */
struct cfg_rate {
	int n;
	int64_t period_ms;
};

/* A free-form [handler] key = value pair. */
struct cfg_kv {
	char *key;
	char *value;
};

/*
 * All durations are in milliseconds, sizes in bytes. Strings are owned by the
 * struct and freed by config_free(). Defaults are those documented in README.
 */
struct config {
	char *path;			/* file it was read from */

	/* [bot] */
	char *name;			/* default: file name without .conf */
	char *token_file;		/* NULL if unset */
	char *token;			/* from `token =` (discouraged), NULL if unset */
	int token_line;			/* line of `token =`, 0 if unset */
	char *api_url;			/* "https://api.telegram.org", no trailing '/' */

	/* [poll] */
	int64_t poll_timeout_ms;	/* 30s; 0..50s */
	int poll_limit;			/* 100; 1..100 */
	char *allowed_updates;		/* JSON array text, NULL = Telegram's default */
	int delete_webhook;		/* 0 */

	/* [workers] */
	int worker_count;		/* 0 in the file = auto = online CPUs */
	char *handler;			/* required; path of the .so */
	size_t stack_size;		/* 256k; 16k..64m */
	int max_updates;		/* 0 = off */

	/* [order] */
	unsigned sequentialize;		/* CFG_SEQ_* bits, default CFG_SEQ_CHAT */
	uint32_t bypass;		/* bit set of enum update_type (keys.h) */

	/* [limits] */
	int concurrency;		/* 500 */
	int worker_concurrency;		/* 0 in the file = concurrency / count, at least 1 */
	int max_pending;		/* 10000 */
	int64_t update_timeout_ms;	/* 60s */
	int64_t shutdown_timeout_ms;	/* 30s */
	int max_attempts;		/* 3 */
	int64_t kill_grace_ms;		/* 5s */
	int64_t heartbeat_timeout_ms;	/* 10s */

	/* [journal] */
	char *journal_path;		/* resolved: $STATE_DIRECTORY/journal.db or ./<name>.journal.db */
	int journal_enabled;		/* 1 */
	enum cfg_sync journal_sync;	/* full */

	/* [control] */
	char *control_socket;		/* resolved: $RUNTIME_DIRECTORY/control.sock or ./<name>.control.sock */
	int control_enabled;		/* 1 */

	/* [metrics] */
	char *metrics_listen;		/* "HOST:PORT" or "[V6]:PORT"; NULL = off (default) */

	/* [api] (used by workers) */
	int64_t api_timeout_ms;		/* 30s */
	int api_retries;		/* 3 */
	int64_t api_retry_after_max_ms;	/* 30s */
	int api_retry_ambiguous;	/* 0: a write that may have run is not re-sent */
	int api_http_version;		/* enum botapi_http, default auto */
	char *api_ca_file;		/* NULL: the system's CA bundle */
	char *api_ca_path;		/* NULL: none */
	char *api_proxy;		/* NULL: none; a secret (may hold a password) */

	/* [throttle] (token buckets shared by all workers) */
	int throttle_enabled;		/* 0 */
	struct cfg_rate throttle_global;	/* 30/s */
	struct cfg_rate throttle_chat;	/* 1/s */
	struct cfg_rate throttle_group;	/* 20/m, for chat ids < 0 */

	/* [log] */
	int log_level;			/* enum log_level, default info */

	/* [cluster] (absent: single-machine mode) */
	char *cluster_nats;		/* NULL = no cluster; "URL, URL"; may hold passwords */
	char *cluster_credentials;	/* NULL: none; default $CREDENTIALS_DIRECTORY/nats.creds */
	char *cluster_node;		/* default: the host name up to its first '.' */
	int cluster_replicas;		/* 3; 1..5 */
	int64_t cluster_lease_ms;	/* 5s; 1s..60s */

	/* [handler] */
	struct cfg_kv *handler_kv;
	size_t handler_nkv;
};

/*
 * Load and validate `path`. On failure returns NULL and writes one line to
 * `err` (size errlen) of the form
 *   "FILE:LINE: [section] key: what is wrong (accepted: ...)"
 * (LINE is omitted for whole-file problems such as a missing handler key).
 * Relative paths in the file are taken from the file's directory and made
 * absolute; the journal and control socket defaults (no key) from the
 * current directory. Logs a warning for a token in the file and for an
 * http:// api_url to a host that is not loopback.
 */
struct config *config_load(const char *path, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void config_free(struct config *cfg);

/* Value of a [handler] key, NULL if absent. */
const char *config_handler_get(const struct config *cfg, const char *key);


#endif
