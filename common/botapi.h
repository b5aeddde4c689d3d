/* Bot API requests: URL building (the one place the token is used) and response decoding. */
#ifndef TGRUN_BOTAPI_H
#define TGRUN_BOTAPI_H

#include <stddef.h>
#include <curl/curl.h>
#include <jansson.h>

/* A growing response body. */
struct botapi_buf {
	char *data;
	size_t len, cap;
	int overflow;		/* an append went past its `max`: the body was cut */
};

/* One Bot API request on a reusable easy handle (keep-alive). */
struct botapi_req {
	CURL *easy;
	struct curl_slist *hdrs;
	char *url;
	char *body;
	struct botapi_buf resp;
	char errbuf[CURL_ERROR_SIZE];
};

/*
 * How requests reach the Bot API: [bot] api_url and the [api] network keys.
 * One per process; every request of that process uses it.
 */
enum botapi_http {
	BOTAPI_HTTP_AUTO,	/* calls: HTTP/2 over TLS where offered; long poll: 1.1 */
	BOTAPI_HTTP_1_1,	/* HTTP/1.1 everywhere */
	BOTAPI_HTTP_2,		/* HTTP/2 over TLS where offered, long poll too */
};

struct botapi_net {
	const char *api_url;	/* no trailing '/' */
	const char *token;
	enum botapi_http http;
	const char *ca_file;	/* NULL: libcurl's default CA bundle */
	const char *ca_path;	/* NULL: none */
	const char *proxy;	/* NULL: none; may hold credentials (a secret) */
};

/* What a request is for: the long poll may use another HTTP version. */
enum botapi_use { BOTAPI_CALL, BOTAPI_POLL };

/* Decoded answer. `result` is a new reference (NULL unless ok). */
struct botapi_result {
	int ok;
	long http_status;
	json_t *result;
	int error_code;
	int retry_after;	/* seconds, 0 if none */
	char description[256];
};

/*
 * Append n bytes, keeping the buffer NUL-terminated. -1 when it would grow
 * past `max` bytes or memory runs out.
 */
int botapi_buf_append(struct botapi_buf *b, const void *p, size_t n, size_t max)
	__attribute__((warn_unused_result));

/* Token is syntactically a Bot API token: digits ':' [A-Za-z0-9_-]+. */
int botapi_token_valid(const char *token);

int botapi_req_init(struct botapi_req *r) __attribute__((warn_unused_result));
void botapi_req_free(struct botapi_req *r);

/*
 * Prepare `r` to POST `body` (a JSON object, not stolen) to METHOD.
 * timeout_ms bounds the whole transfer. The URL holds the token; it is
 * never logged, and curl's own error text is redacted by the logger.
 */
int botapi_req_prepare(struct botapi_req *r, const struct botapi_net *net,
    enum botapi_use use, const char *method, const json_t *body, long timeout_ms)
	__attribute__((warn_unused_result));

/*
 * The connection options of `net` on any easy handle that talks to the Bot
 * API (TLS trust, proxy, HTTP version, buffers). Called by
 * botapi_req_prepare(); exported for transfers that build their own request.
 */
void botapi_net_apply(CURL *e, const struct botapi_net *net, enum botapi_use use);

/*
 * What a failed attempt says about the request: whether it certainly did not
 * reach the Bot API, so that sending it again cannot make it run twice.
 * That holds when the connection, the proxy or the TLS handshake failed
 * before anything was written, or when the answer says the request was not
 * taken (429; 502, 503 or 504 from a proxy, with a body that is not a Bot API
 * answer). libcurl itself re-sends streams an HTTP/2 server refused
 * (REFUSED_STREAM, or above a GOAWAY's last stream id). Everything else that
 * fails after the request may have been written is ambiguous.
 * `decoded` is botapi_decode()'s return for the attempt.
 */
int botapi_not_delivered(CURL *e, CURLcode cc, int decoded,
    const struct botapi_result *res);

/* Tell the logger to redact a proxy URL's credentials (NULL: nothing to do). */
void botapi_proxy_secrets(const char *proxy);

/* 1 for methods that only read (getMe, getChat, getFile...): safe to repeat. */
int botapi_method_readonly(const char *method);

/* 1 when cc is a TLS trust failure (unknown CA, bad CA file) that a retry cannot fix. */
int botapi_tls_trust_error(CURLcode cc);

/*
 * Decode the answer of a finished transfer. Returns 0 when the body was a
 * Bot API JSON answer (ok or not), -1 when it was not (network error, HTML,
 * malformed JSON): then `description` says what happened.
 */
int botapi_decode(struct botapi_req *r, CURLcode res, struct botapi_result *out);
void botapi_result_clear(struct botapi_result *res);

#endif
