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
int botapi_req_prepare(struct botapi_req *r, const char *api_url,
    const char *token, const char *method, const json_t *body, long timeout_ms)
	__attribute__((warn_unused_result));

/*
 * Decode the answer of a finished transfer. Returns 0 when the body was a
 * Bot API JSON answer (ok or not), -1 when it was not (network error, HTML,
 * malformed JSON): then `description` says what happened.
 */
int botapi_decode(struct botapi_req *r, CURLcode res, struct botapi_result *out);
void botapi_result_clear(struct botapi_result *res);

#endif
