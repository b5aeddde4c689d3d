/* Plain HTTP requests from handlers to other services (tgrun_http) on the worker's curl multi. */
#include "tgrun.h"
#include "worker.h"
#include "botapi.h"
#include "xfer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTTP_MAX_BODY	(64u << 20)	/* tgrun_http() answers larger than this fail */

/* A tgrun_http() transfer. */
struct hx {
	struct botapi_buf body;
	int too_big;
	long status;
	char *ctype;
	char errbuf[CURL_ERROR_SIZE];
};

static size_t hx_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct hx *h = arg;
	size_t n = size * nmemb;

	if (botapi_buf_append(&h->body, ptr, n, HTTP_MAX_BODY) != 0) {
		h->too_big = h->body.len + n > HTTP_MAX_BODY;
		return 0;
	}
	return n;
}

static void hx_finish(CURL *easy, CURLcode cc, void *arg)
{
	struct hx *h = arg;
	char *ct = NULL;

	if (cc != CURLE_OK)
		return;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &h->status);
	if (curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct != NULL)
		h->ctype = strdup(ct);
}

/* An HTTP token (RFC 9110), so the method cannot smuggle a request line. */
static int method_ok(const char *m)
{
	if (*m == '\0' || strlen(m) > 32)
		return 0;
	for (; *m; m++)
		if (!((*m >= 'A' && *m <= 'Z') || (*m >= 'a' && *m <= 'z') ||
		    (*m >= '0' && *m <= '9') || strchr("!#$%&'*+-.^_`|~", *m)))
			return 0;
	return 1;
}

/* The request's headers, plus "Expect:" unless it has one. NULL on error. */
static struct curl_slist *hx_headers(const char *const *hdrs, int *bad)
{
	struct curl_slist *l = NULL, *nl;
	int has_expect = 0;

	*bad = 0;
	for (size_t i = 0; hdrs != NULL && hdrs[i] != NULL; i++) {
		if (strpbrk(hdrs[i], "\r\n") != NULL || strchr(hdrs[i], ':') == NULL) {
			*bad = 1;
			goto fail;
		}
		if (strncasecmp(hdrs[i], "Expect:", 7) == 0)
			has_expect = 1;
		if ((nl = curl_slist_append(l, hdrs[i])) == NULL)
			goto fail;
		l = nl;
	}
	if (!has_expect) {
		if ((nl = curl_slist_append(l, "Expect:")) == NULL)
			goto fail;
		l = nl;
	}
	return l;
fail:
	curl_slist_free_all(l);
	return NULL;
}

static int hx_setup(CURL *e, const struct tgrun_http_request *req, const char *method,
    long timeout_ms, struct curl_slist *hl, struct hx *h)
{
	int bad = 0;

	bad |= curl_easy_setopt(e, CURLOPT_URL, req->url) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
	    timeout_ms < 10000 ? timeout_ms : 10000L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "tgrun/0.1") != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, hx_write) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, h) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf) != CURLE_OK;
	if (strcasecmp(method, "HEAD") == 0)
		return bad | (curl_easy_setopt(e, CURLOPT_NOBODY, 1L) != CURLE_OK);
	if (req->body != NULL || strcasecmp(method, "POST") == 0) {
		/* The body is borrowed: the caller's buffer outlives the transfer. */
		bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)(req->body ? req->body_len : 0)) != CURLE_OK;
		bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDS,
		    req->body ? req->body : "") != CURLE_OK;
	}
	if (strcasecmp(method, "GET") == 0 && req->body == NULL)
		bad |= curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) != CURLE_OK;
	else if (strcasecmp(method, "POST") != 0)
		bad |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK;
	return bad;
}

int tgrun_http(struct tgrun_ctx *ctx, const struct tgrun_http_request *req,
    struct tgrun_http_response *resp, struct tgrun_error *err)
{
	struct hx h;
	struct curl_slist *hl = NULL;
	const char *method;
	CURL *e = NULL;
	CURLcode cc;
	long timeout_ms;
	int bad, rc = -1;

	memset(&h, 0, sizeof(h));
	if (resp != NULL)
		memset(resp, 0, sizeof(*resp));
	api_set_err(err, TGRUN_ERR_NONE, 0, 0, "");
	if (!ctx_in_fiber(ctx)) {
		api_set_err(err, TGRUN_ERR_INVALID, 0, 0, "tgrun_http: called outside a fiber");
		return -1;
	}
	method = req && req->method ? req->method : "GET";
	if (req == NULL || resp == NULL || req->url == NULL ||
	    (strncasecmp(req->url, "http://", 7) != 0 &&
	    strncasecmp(req->url, "https://", 8) != 0) ||
	    strpbrk(req->url, "\r\n") != NULL || !method_ok(method) ||
	    (req->body == NULL && req->body_len > 0) || !(req->timeout >= 0)) {
		api_set_err(err, TGRUN_ERR_INVALID, 0, 0, "tgrun_http: bad request (an "
		    "http:// or https:// URL, a method token, timeout >= 0)");
		return -1;
	}
	timeout_ms = req->timeout > 0 ? (long)(req->timeout * 1000 + 0.5) :
	    ctx->bot->set.api_timeout_ms;
	if (timeout_ms < 1)
		timeout_ms = 1;
	hl = hx_headers(req->headers, &bad);
	if (hl == NULL) {
		api_set_err(err, TGRUN_ERR_INVALID, 0, 0, bad ?
		    "tgrun_http: a header is not one \"Name: value\" line" :
		    "tgrun_http: out of memory");
		return -1;
	}
	e = curl_easy_init();
	if (e == NULL || hx_setup(e, req, method, timeout_ms, hl, &h) != 0) {
		api_set_err(err, TGRUN_ERR_INVALID, 0, 0, "tgrun_http: cannot set up the request");
		goto out;
	}
	if (xfer_run_other(ctx, e, "http", hx_finish, &h, &cc) != 0) {
		api_set_err(err, TGRUN_ERR_CANCELLED, 0, 0, "cancelled");
		goto out;
	}
	if (cc != CURLE_OK) {
		const char *why = h.too_big ? "tgrun_http: the answer is over 64 MiB" :
		    h.errbuf[0] ? h.errbuf : curl_easy_strerror(cc);

		api_set_err(err, cc == CURLE_OPERATION_TIMEDOUT ? TGRUN_ERR_TIMEOUT :
		    cc == CURLE_URL_MALFORMAT || cc == CURLE_UNSUPPORTED_PROTOCOL ?
		    TGRUN_ERR_INVALID : TGRUN_ERR_NETWORK, 0, 0, why);
		goto out;
	}
	if (h.body.data == NULL && (h.body.data = calloc(1, 1)) == NULL) {
		api_set_err(err, TGRUN_ERR_INVALID, 0, 0, "tgrun_http: out of memory");
		goto out;
	}
	resp->status = (int)h.status;
	resp->body = h.body.data;
	resp->body_len = h.body.len;
	resp->content_type = h.ctype;
	h.body.data = NULL;
	h.ctype = NULL;
	rc = 0;
out:
	if (e != NULL)
		curl_easy_cleanup(e);
	curl_slist_free_all(hl);
	free(h.body.data);
	free(h.ctype);
	return rc;
}

void tgrun_http_response_free(struct tgrun_http_response *resp)
{
	if (resp == NULL)
		return;
	free(resp->body);
	free(resp->content_type);
	memset(resp, 0, sizeof(*resp));
}
