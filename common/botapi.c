/* Bot API requests: URL building (the one place the token is used) and response decoding. */
#include "botapi.h"
#include "log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

/* Answers larger than this are refused (getUpdates of 100 long updates fits). */
#define BOTAPI_MAX_BODY (64u << 20)

int botapi_token_valid(const char *t)
{
	const char *p = t;

	if (t == NULL || !isdigit((unsigned char)*p))
		return 0;
	while (isdigit((unsigned char)*p))
		p++;
	if (*p++ != ':' || *p == '\0')
		return 0;
	for (; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
			return 0;
	return strlen(t) < 128;
}

int botapi_buf_append(struct botapi_buf *b, const void *p, size_t n, size_t max)
{
	if (b->len + n > max) {
		b->overflow = 1;
		return -1;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *d;

		while (cap < b->len + n + 1)
			cap *= 2;
		d = realloc(b->data, cap);
		if (d == NULL)
			return -1;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	/* Returning less than given makes curl fail the transfer. */
	return botapi_buf_append(arg, ptr, size * nmemb, BOTAPI_MAX_BODY) == 0 ?
	    size * nmemb : 0;
}

int botapi_req_init(struct botapi_req *r)
{
	memset(r, 0, sizeof(*r));
	r->easy = curl_easy_init();
	if (r->easy == NULL)
		return -1;
	r->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	if (r->hdrs == NULL) {
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
		return -1;
	}
	return 0;
}

void botapi_req_free(struct botapi_req *r)
{
	if (r->easy != NULL)
		curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->hdrs);
	free(r->url);
	free(r->body);
	free(r->resp.data);
	memset(r, 0, sizeof(*r));
}

/*
 * libcurl makes an SSL_CTX per connection and hands it here (OpenSSL
 * backend). Keep each connection's TLS buffers instead of freeing them
 * after every record (a malloc and free of ~16 KiB per read and write).
 * Not read-ahead: libcurl asks SSL_pending() what is left to read, which
 * does not count read-ahead bytes, and transfers then wait for ever.
 */
static CURLcode ssl_ctx_tune(CURL *e, void *sslctx, void *arg)
{
	SSL_CTX_clear_mode(sslctx, SSL_MODE_RELEASE_BUFFERS);
	return CURLE_OK;
}

/* 1 when libcurl's TLS backend is OpenSSL, whose SSL_CTX ssl_ctx_tune() expects. */
static int tls_is_openssl(void)
{
	static int known = -1;

	if (known < 0) {
		const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

		known = v->ssl_version != NULL && strncmp(v->ssl_version, "OpenSSL/", 8) == 0;
	}
	return known;
}

void botapi_net_apply(CURL *e, const struct botapi_net *net, enum botapi_use use)
{
	long ver = CURL_HTTP_VERSION_2TLS;
	int h2;

	if (net->http == BOTAPI_HTTP_1_1 ||
	    (net->http == BOTAPI_HTTP_AUTO && use == BOTAPI_POLL))
		ver = CURL_HTTP_VERSION_1_1;
	/* libcurl negotiates HTTP/2 only over TLS (ALPN). */
	h2 = ver != CURL_HTTP_VERSION_1_1 && strncmp(net->api_url, "https:", 6) == 0;
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, ver);
	/*
	 * Where a call may be multiplexed, it waits for the connection being
	 * set up instead of opening one of its own: a burst's first hundred
	 * calls share one connection rather than making a hundred.
	 */
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, h2 ? 1L : 0L);
	/*
	 * A small receive buffer saves memory when thousands of calls are open,
	 * but libcurl 7.88's HTTP/2 stalls a transfer whose buffer is smaller than
	 * a frame (a getUpdates answer stopped short until its timeout). Use it
	 * only where HTTP/2 cannot be negotiated.
	 */
	curl_easy_setopt(e, CURLOPT_BUFFERSIZE, h2 ? (long)CURL_MAX_WRITE_SIZE : 4096L);
	/*
	 * libcurl builds the CA store once per multi handle and keeps it, but
	 * only when no CA directory is set; Debian's libcurl sets one by default,
	 * which made every new TLS connection parse the whole system bundle.
	 * Without ca_file or ca_path: the default bundle alone, cached.
	 */
	if (net->ca_file != NULL || net->ca_path != NULL) {
		curl_easy_setopt(e, CURLOPT_CAINFO, net->ca_file);
		curl_easy_setopt(e, CURLOPT_PROXY_CAINFO, net->ca_file);
	}
	curl_easy_setopt(e, CURLOPT_CAPATH, net->ca_path);
	curl_easy_setopt(e, CURLOPT_PROXY_CAPATH, net->ca_path);
	if (tls_is_openssl())
		curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_tune);
	/* Only [api] proxy: "" also keeps libcurl from reading *_proxy variables. */
	curl_easy_setopt(e, CURLOPT_PROXY, net->proxy != NULL ? net->proxy : "");
}

int botapi_req_prepare(struct botapi_req *r, const struct botapi_net *net,
    enum botapi_use use, const char *method, const json_t *body, long timeout_ms)
{
	CURL *e = r->easy;
	size_t n;

	free(r->url);
	free(r->body);
	r->body = NULL;
	n = strlen(net->api_url) + strlen(net->token) + strlen(method) + 8;
	r->url = malloc(n);
	if (r->url == NULL)
		return -1;
	snprintf(r->url, n, "%s/bot%s/%s", net->api_url, net->token, method);
	r->body = json_dumps(body, JSON_COMPACT);
	if (r->body == NULL)
		return -1;
	r->resp.len = 0;
	r->resp.overflow = 0;
	if (r->resp.data != NULL)
		r->resp.data[0] = '\0';
	r->errbuf[0] = '\0';

	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(r->body));
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &r->resp);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_USERAGENT, "tgrun/0.1");
	botapi_net_apply(e, net, use);
	return 0;
}

int botapi_not_delivered(CURL *e, CURLcode cc, int decoded,
    const struct botapi_result *res)
{
	long sent = 0;
	long status;

	if (cc == CURLE_OK) {
		if (decoded == 0)
			return !res->ok && res->error_code == 429;
		status = res->http_status;
		return status == 502 || status == 503 || status == 504;
	}
	switch (cc) {
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_PROXY:
		return 1;
	default:
		break;
	}
	/* Any other failure: unless not one byte of the request left, it may have run. */
	if (curl_easy_getinfo(e, CURLINFO_REQUEST_SIZE, &sent) != CURLE_OK)
		return 0;
	return sent == 0;
}

int botapi_method_readonly(const char *method)
{
	return strncmp(method, "get", 3) == 0 && isupper((unsigned char)method[3]);
}

int botapi_tls_trust_error(CURLcode cc)
{
	return cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE;
}

void botapi_result_clear(struct botapi_result *res)
{
	json_decref(res->result);
	memset(res, 0, sizeof(*res));
}

int botapi_decode(struct botapi_req *r, CURLcode res, struct botapi_result *out)
{
	json_t *root, *ok, *v;
	json_error_t jerr;

	memset(out, 0, sizeof(*out));
	if (res != CURLE_OK) {
		/* errbuf may name the host, never the path: the token is in the path. */
		snprintf(out->description, sizeof(out->description), "%s",
		    r->errbuf[0] ? r->errbuf : curl_easy_strerror(res));
		return -1;
	}
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &out->http_status);
	root = json_loadb(r->resp.data ? r->resp.data : "", r->resp.len, 0, &jerr);
	if (root == NULL || !json_is_object(root) ||
	    !json_is_boolean(ok = json_object_get(root, "ok"))) {
		snprintf(out->description, sizeof(out->description),
		    "HTTP %ld with a body that is not a Bot API answer (%zu bytes)",
		    out->http_status, r->resp.len);
		json_decref(root);
		return -1;
	}
	out->ok = json_is_true(ok);
	if (out->ok) {
		out->result = json_incref(json_object_get(root, "result"));
		if (out->result == NULL)
			out->result = json_null();
	} else {
		v = json_object_get(root, "error_code");
		out->error_code = json_is_integer(v) ? (int)json_integer_value(v)
		    : (int)out->http_status;
		v = json_object_get(root, "description");
		snprintf(out->description, sizeof(out->description), "%s",
		    json_is_string(v) ? json_string_value(v) : "no description");
		v = json_object_get(json_object_get(root, "parameters"), "retry_after");
		if (json_is_integer(v))
			out->retry_after = (int)json_integer_value(v);
	}
	json_decref(root);
	return 0;
}

void botapi_proxy_secrets(const char *proxy)
{
	const char *p, *at, *colon;
	char *user;

	if (proxy == NULL || (p = strstr(proxy, "://")) == NULL)
		return;
	p += 3;
	if ((at = strrchr(p, '@')) == NULL)
		return;
	/* The whole URL, then USER:PASSWORD and PASSWORD on their own. */
	log_add_secret(proxy);
	if ((user = strndup(p, (size_t)(at - p))) == NULL)
		return;
	log_add_secret(user);
	if ((colon = strchr(user, ':')) != NULL && colon[1] != '\0')
		log_add_secret(colon + 1);
	explicit_bzero(user, strlen(user));
	free(user);
}
