/* Files and HTTP for handlers: multipart uploads, file downloads and plain HTTP on the worker's curl multi. */
#include "tgrun.h"
#include "clock.h"
#include "worker.h"
#include "backoff.h"
#include "botapi.h"
#include "evcurl.h"
#include "log.h"
#include "sched.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define HTTP_MAX_BODY	(64u << 20)	/* tgrun_http() answers larger than this fail */
#define ERR_BODY_MAX	4096		/* kept of a refused download's answer */

typedef void (*xrun_finish_fn)(CURL *easy, CURLcode cc, void *arg);

/*
 * One attempt of a transfer on the multi. Heap and counted: the fiber and the
 * deferred start each hold a reference, since a wait aborted before the start
 * ran would otherwise leave the start with a dangling pointer.
 */
struct xrun {
	struct worker *w;
	CURL *easy;
	struct task *t;
	xrun_finish_fn finish;	/* on the scheduler's stack, before the wake-up */
	void *farg;
	CURLcode cc;
	int refs, added, aborted;
};

/* A multipart Bot API call: the request (URL with the token) and its answer. */
struct upload {
	struct botapi_req r;
	curl_mime *mime;
	struct botapi_result res;
	int decoded;		/* botapi_decode(): 0 Bot API answer, -1 not */
};

/* A file download: the request, the temporary file, an error answer in r.resp. */
struct dl {
	struct botapi_req r;
	int fd;
	int wr_errno;		/* write() failed: a local error, not retried */
	long status;
};

/* A tgrun_http() transfer. */
struct hx {
	struct botapi_buf body;
	int too_big;
	long status;
	char *ctype;
	char errbuf[CURL_ERROR_SIZE];
};

/* ---- one transfer on the multi ------------------------------------------- */

static void xrun_unref(struct xrun *x)
{
	if (--x->refs == 0)
		free(x);
}

static void xrun_done(CURL *easy, CURLcode res, void *arg)
{
	struct xrun *x = arg;

	x->added = 0;
	x->cc = res;
	if (x->finish != NULL)
		x->finish(easy, res, x->farg);
	sched_wake(x->t);
}

static void xrun_start(void *arg)
{
	struct xrun *x = arg;

	if (!x->aborted) {
		if (evcurl_add(x->w->ec, x->easy, xrun_done, x) == 0) {
			x->added = 1;
		} else {
			x->cc = CURLE_FAILED_INIT;
			if (x->finish != NULL)
				x->finish(x->easy, x->cc, x->farg);
			sched_wake(x->t);
		}
	}
	xrun_unref(x);
}

static void xrun_abort(struct task *t, void *obj)
{
	struct xrun *x = obj;

	x->aborted = 1;
	if (x->added) {
		evcurl_remove(x->w->ec, x->easy);
		x->added = 0;
	}
}

/*
 * Run `easy` once on the worker's multi; the fiber parks meanwhile.
 * 0 when the transfer ended (*cc says how), ECANCELED when it was cancelled
 * (the transfer was removed from the multi).
 */
static int xrun_perform(struct tgrun_ctx *ctx, CURL *easy, const char *what,
    xrun_finish_fn finish, void *farg, CURLcode *cc)
{
	struct worker *w = ctx->bot->w;
	struct xrun *x;
	int st;

	if (tgrun_cancelled(ctx))
		return ECANCELED;
	x = calloc(1, sizeof(*x));
	if (x == NULL) {
		*cc = CURLE_OUT_OF_MEMORY;
		if (finish != NULL)
			finish(easy, *cc, farg);
		return 0;
	}
	x->w = w;
	x->easy = easy;
	x->t = sched_current();
	x->finish = finish;
	x->farg = farg;
	x->refs = 2;
	if (sched_defer(w->sched, xrun_start, x) != 0)
		fatalx("out of memory");
	/* The transfer's own timeout bounds this wait. */
	st = sched_park(what, xrun_abort, x, -1);
	if (st == 0)
		*cc = x->cc;
	xrun_unref(x);
	return st == 0 ? 0 : ECANCELED;
}

/* ---- uploads -------------------------------------------------------------- */

static int add_param(curl_mime *mime, const char *key, json_t *v)
{
	curl_mimepart *part;
	char *enc = NULL;
	const char *s;
	size_t len;
	int bad;

	if (json_is_null(v))
		return 0;
	if (json_is_string(v)) {
		s = json_string_value(v);
		len = json_string_length(v);
	} else {
		enc = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		if (enc == NULL)
			return -1;
		s = enc;
		len = strlen(enc);
	}
	part = curl_mime_addpart(mime);
	bad = part == NULL || curl_mime_name(part, key) != CURLE_OK ||
	    curl_mime_data(part, s, len) != CURLE_OK;
	free(enc);
	return bad ? -1 : 0;
}

/* 0, or -1 with err filled. */
static int add_file(curl_mime *mime, const struct tgrun_file *f,
    struct tgrun_error *err)
{
	curl_mimepart *part;
	char why[sizeof(err->description)];
	struct stat st;
	int fd, bad;

	if (f->field == NULL || *f->field == '\0' ||
	    (f->path == NULL && f->data == NULL && f->len > 0)) {
		api_set_err(err, TGRUN_ERR_INVALID, 0, 0,
		    "tgrun_upload: a file without field, or without path and data");
		return -1;
	}
	if (f->path != NULL) {
		/* Refuse now what libcurl would only fail on mid-request (and we retry). */
		int e = 0;

		fd = open(f->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) != 0)
			e = errno;
		else if (!S_ISREG(st.st_mode))
			e = EINVAL;
		if (fd >= 0)
			close(fd);
		if (e != 0) {
			snprintf(why, sizeof(why), "tgrun_upload: %s: %s", f->path,
			    e == EINVAL ? "not a regular file" : strerror(e));
			api_set_err(err, TGRUN_ERR_INVALID, e, 0, why);
			return -1;
		}
	}
	part = curl_mime_addpart(mime);
	bad = part == NULL || curl_mime_name(part, f->field) != CURLE_OK;
	if (!bad && f->path != NULL)
		bad = curl_mime_filedata(part, f->path) != CURLE_OK;
	else if (!bad)
		bad = curl_mime_data(part, f->data ? f->data : "", f->len) != CURLE_OK ||
		    curl_mime_filename(part, f->filename ? f->filename : f->field) != CURLE_OK;
	if (!bad && f->filename != NULL)
		bad = curl_mime_filename(part, f->filename) != CURLE_OK;
	if (!bad && f->content_type != NULL)
		bad = curl_mime_type(part, f->content_type) != CURLE_OK;
	if (bad) {
		api_set_err(err, TGRUN_ERR_INVALID, 0, 0, "tgrun_upload: out of memory");
		return -1;
	}
	return 0;
}

/* Build the request once; every attempt re-sends it. 0, or -1 with err filled. */
static int upload_prepare(struct worker *w, struct upload *up, const char *method,
    json_t *params, const struct tgrun_file *files, size_t n,
    struct tgrun_error *err)
{
	json_t *empty = json_object(), *v;
	const char *key;
	int rc;

	if (empty == NULL || botapi_req_init(&up->r) != 0) {
		json_decref(empty);
		api_set_err(err, TGRUN_ERR_INVALID, 0, 0, "tgrun_upload: out of memory");
		return -1;
	}
	/* No JSON content type, and no 100-continue round trip before big bodies. */
	curl_slist_free_all(up->r.hdrs);
	up->r.hdrs = curl_slist_append(NULL, "Expect:");
	rc = up->r.hdrs == NULL ? -1 : botapi_req_prepare(&up->r, &w->bot.set.net,
	    BOTAPI_CALL, method, empty, w->bot.set.api_timeout_ms);
	json_decref(empty);
	if (rc != 0 || (up->mime = curl_mime_init(up->r.easy)) == NULL) {
		api_set_err(err, TGRUN_ERR_INVALID, 0, 0, "tgrun_upload: out of memory");
		return -1;
	}
	json_object_foreach(params, key, v) {
		if (add_param(up->mime, key, v) != 0) {
			api_set_err(err, TGRUN_ERR_INVALID, 0, 0,
			    "tgrun_upload: cannot encode a parameter");
			return -1;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (add_file(up->mime, &files[i], err) != 0)
			return -1;
	/* Set last: it replaces the JSON body botapi_req_prepare() set up. */
	if (curl_easy_setopt(up->r.easy, CURLOPT_MIMEPOST, up->mime) != CURLE_OK) {
		api_set_err(err, TGRUN_ERR_INVALID, 0, 0, "tgrun_upload: cannot set the form");
		return -1;
	}
	return 0;
}

/* On the scheduler's stack: the answer is decoded here, not on the fiber. */
static void upload_finish(CURL *easy, CURLcode cc, void *arg)
{
	struct upload *up = arg;

	up->decoded = botapi_decode(&up->r, cc, &up->res);
}

json_t *tgrun_upload(struct tgrun_ctx *ctx, const char *method, json_t *params,
    const struct tgrun_file *files, size_t n, struct tgrun_error *err)
{
	struct upload up;
	struct worker *w;
	struct api_retry rs;
	json_t *result = NULL;
	CURLcode cc;

	memset(&up, 0, sizeof(up));
	api_set_err(err, TGRUN_ERR_NONE, 0, 0, "");
	if (ctx == NULL || method == NULL || *method == '\0' || !ctx_in_fiber(ctx)) {
		api_set_err(err, TGRUN_ERR_INVALID, 0, 0, ctx && method && *method ?
		    "tgrun_upload: called outside a fiber" :
		    "tgrun_upload: no context or method");
		goto out;
	}
	if ((params != NULL && !json_is_object(params)) || (n > 0 && files == NULL)) {
		api_set_err(err, TGRUN_ERR_INVALID, 0, 0,
		    "tgrun_upload: params is not an object, or files is NULL");
		goto out;
	}
	w = ctx->bot->w;
	if (upload_prepare(w, &up, method, params, files, n, err) != 0)
		goto out;
	api_retry_init(&rs, ctx);
	for (;;) {
		int64_t wait_ms;

		botapi_result_clear(&up.res);
		up.decoded = -1;
		up.r.resp.len = 0;
		up.r.errbuf[0] = '\0';
		if (api_throttle(w, method, params) == ECANCELED ||
		    xrun_perform(ctx, up.r.easy, method, upload_finish, &up, &cc) != 0) {
			api_set_err(err, TGRUN_ERR_CANCELLED, 0, 0, "cancelled");
			break;
		}
		if (up.decoded == 0 && up.res.ok) {
			result = up.res.result;
			up.res.result = NULL;
			break;
		}
		wait_ms = api_retry_policy(w, method, &rs, up.r.easy, up.decoded,
		    &up.res, cc, err);
		if (wait_ms < 0)
			break;
		if (sched_park("retry wait", NULL, NULL, wait_ms) == ECANCELED) {
			api_set_err(err, TGRUN_ERR_CANCELLED, 0, 0, "cancelled");
			break;
		}
	}
out:
	botapi_result_clear(&up.res);
	botapi_req_free(&up.r);		/* the easy handle first, then its form */
	curl_mime_free(up.mime);
	json_decref(params);
	return result;
}

/* ---- downloads ------------------------------------------------------------ */

/* Telegram's file paths look like "documents/file_12.pdf"; refuse anything else. */
static int file_path_ok(const char *p)
{
	if (p == NULL || *p == '\0' || *p == '/' || strstr(p, "..") != NULL ||
	    strlen(p) > 512)
		return 0;
	for (; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' ||
		    *p == '-' || *p == '/'))
			return 0;
	return 1;
}

static size_t dl_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct dl *d = arg;
	size_t n = size * nmemb, off = 0;
	long code = 0;

	curl_easy_getinfo(d->r.easy, CURLINFO_RESPONSE_CODE, &code);
	if (code < 200 || code > 299) {
		/* An error answer: keep its start for the description, never in the file. */
		struct botapi_buf *b = &d->r.resp;
		size_t k = n < ERR_BODY_MAX - b->len ? n : ERR_BODY_MAX - b->len;

		if (b->data == NULL) {
			b->data = malloc(ERR_BODY_MAX + 1);
			if (b->data == NULL)
				return n;
			b->cap = ERR_BODY_MAX + 1;
		}
		memcpy(b->data + b->len, ptr, k);
		b->len += k;
		b->data[b->len] = '\0';
		return n;
	}
	while (off < n) {
		ssize_t k = write(d->fd, ptr + off, n - off);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			d->wr_errno = errno;
			return 0;	/* fails the transfer with CURLE_WRITE_ERROR */
		}
		off += (size_t)k;
	}
	return n;
}

static void dl_finish(CURL *easy, CURLcode cc, void *arg)
{
	struct dl *d = arg;

	d->status = 0;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &d->status);
}

/* Prepare the GET of file_path. 0, or -1 with err filled. */
static int dl_prepare(struct worker *w, struct dl *d, const char *file_path,
    struct tgrun_error *err)
{
	json_t *empty = json_object();
	struct botapi_net net = w->bot.set.net;
	char *base = NULL;
	int rc = -1;

	if (empty == NULL || botapi_req_init(&d->r) != 0 ||
	    asprintf(&base, "%s/file", w->bot.set.api_url) < 0) {
		base = NULL;
		goto out;
	}
	curl_slist_free_all(d->r.hdrs);
	d->r.hdrs = NULL;
	/*
	 * The file URL is <api_url>/file/bot<token>/<file_path>: let
	 * botapi_req_prepare() build it, the one place a token goes into a URL.
	 */
	net.api_url = base;
	if (botapi_req_prepare(&d->r, &net, BOTAPI_CALL, file_path, empty,
	    w->bot.set.api_timeout_ms) != 0)
		goto out;
	if (curl_easy_setopt(d->r.easy, CURLOPT_HTTPGET, 1L) != CURLE_OK ||
	    curl_easy_setopt(d->r.easy, CURLOPT_WRITEFUNCTION, dl_write) != CURLE_OK ||
	    curl_easy_setopt(d->r.easy, CURLOPT_WRITEDATA, d) != CURLE_OK)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		api_set_err(err, TGRUN_ERR_INVALID, 0, 0, "tgrun_download: out of memory");
	free(base);
	json_decref(empty);
	return rc;
}

static void local_err(struct tgrun_error *err, const char *op, const char *path, int e)
{
	char why[sizeof(err->description)];

	snprintf(why, sizeof(why), "tgrun_download: %s %s: %s", op, path, strerror(e));
	api_set_err(err, TGRUN_ERR_INVALID, e, 0, why);
}

/* The GET with its retries; 0 when the file is in d->fd, else -1 with err filled. */
static int dl_fetch(struct tgrun_ctx *ctx, struct dl *d, const char *tmp,
    struct tgrun_error *err)
{
	struct worker *w = ctx->bot->w;
	struct botapi_result res;
	struct backoff bo;
	CURLcode cc;
	char why[sizeof(err->description)];

	backoff_init(&bo, 200, 5000, (uint64_t)(uintptr_t)d ^ (uint64_t)clock_ms());
	for (int attempt = 0;; attempt++) {
		int64_t wait_ms;

		if (ftruncate(d->fd, 0) != 0 || lseek(d->fd, 0, SEEK_SET) != 0) {
			local_err(err, "truncate", tmp, errno);
			return -1;
		}
		d->r.resp.len = 0;
		d->r.errbuf[0] = '\0';
		d->wr_errno = 0;
		if (xrun_perform(ctx, d->r.easy, "download", dl_finish, d, &cc) != 0) {
			api_set_err(err, TGRUN_ERR_CANCELLED, 0, 0, "cancelled");
			return -1;
		}
		if (cc == CURLE_WRITE_ERROR && d->wr_errno != 0) {
			local_err(err, "write", tmp, d->wr_errno);
			return -1;
		}
		if (cc == CURLE_OK && d->status >= 200 && d->status <= 299)
			return 0;
		if (cc == CURLE_OK && d->status < 500) {
			/* Refused (404: the file_path expired); the answer is in r.resp. */
			if (botapi_decode(&d->r, cc, &res) == 0 && !res.ok)
				api_set_err(err, TGRUN_ERR_API, (int)d->status, 0, res.description);
			else {
				snprintf(why, sizeof(why), "download: HTTP %ld", d->status);
				api_set_err(err, TGRUN_ERR_NETWORK, (int)d->status, 0, why);
			}
			botapi_result_clear(&res);
			return -1;
		}
		if (cc == CURLE_OK)
			snprintf(why, sizeof(why), "HTTP %ld", d->status);
		else
			snprintf(why, sizeof(why), "%s", d->r.errbuf[0] ? d->r.errbuf :
			    curl_easy_strerror(cc));
		if (attempt >= w->bot.set.api_retries) {
			api_set_err(err, cc == CURLE_OPERATION_TIMEDOUT ? TGRUN_ERR_TIMEOUT :
			    TGRUN_ERR_NETWORK, cc == CURLE_OK ? (int)d->status : 0, 0, why);
			return -1;
		}
		wait_ms = backoff_next(&bo);
		log_info("download: %s; retry %d in %lld ms", why, attempt + 1,
		    (long long)wait_ms);
		if (sched_park("retry wait", NULL, NULL, wait_ms) == ECANCELED) {
			api_set_err(err, TGRUN_ERR_CANCELLED, 0, 0, "cancelled");
			return -1;
		}
	}
}

/* Make the rename durable; a failure here does not undo the download. */
static void sync_dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash == NULL ? strdup(".") :
	    strndup(path, slash == path ? 1 : (size_t)(slash - path));
	int fd;

	if (dir == NULL)
		return;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		if (fsync(fd) != 0 && errno != EINVAL)
			log_warn("tgrun_download: fsync(%s): %s", dir, strerror(errno));
		close(fd);
	}
	free(dir);
}

int tgrun_download(struct tgrun_ctx *ctx, const char *file_id, const char *path,
    struct tgrun_error *err)
{
	struct dl d;
	json_t *file;
	const char *fp;
	char *tmp = NULL;
	int rc = -1;

	memset(&d, 0, sizeof(d));
	d.fd = -1;
	api_set_err(err, TGRUN_ERR_NONE, 0, 0, "");
	if (ctx == NULL || !ctx_in_fiber(ctx) || file_id == NULL || *file_id == '\0' ||
	    path == NULL || *path == '\0') {
		api_set_err(err, TGRUN_ERR_INVALID, 0, 0, ctx_in_fiber(ctx) ?
		    "tgrun_download: no file_id or path" :
		    "tgrun_download: called outside a fiber");
		return -1;
	}
	file = tgrun_call(ctx, "getFile", json_pack("{s:s}", "file_id", file_id), err);
	if (file == NULL)
		return -1;
	fp = json_string_value(json_object_get(file, "file_path"));
	if (fp == NULL) {
		/* Telegram leaves it out for files over the bots' download limit. */
		api_set_err(err, TGRUN_ERR_API, 0, 0,
		    "getFile gave no file_path (file too big to download?)");
		goto out;
	}
	if (!file_path_ok(fp)) {
		api_set_err(err, TGRUN_ERR_NETWORK, 0, 0, "getFile gave a malformed file_path");
		goto out;
	}
	if (dl_prepare(ctx->bot->w, &d, fp, err) != 0)
		goto out;
	if (asprintf(&tmp, "%s.XXXXXX", path) < 0) {
		tmp = NULL;
		api_set_err(err, TGRUN_ERR_INVALID, 0, 0, "tgrun_download: out of memory");
		goto out;
	}
	d.fd = mkostemp(tmp, O_CLOEXEC);	/* mode 0600 */
	if (d.fd < 0) {
		local_err(err, "mkstemp", tmp, errno);
		free(tmp);
		tmp = NULL;
		goto out;
	}
	if (dl_fetch(ctx, &d, tmp, err) != 0)
		goto out;
	if (fsync(d.fd) != 0) {
		local_err(err, "fsync", tmp, errno);
		goto out;
	}
	if (close(d.fd) != 0) {
		d.fd = -1;
		local_err(err, "close", tmp, errno);
		goto out;
	}
	d.fd = -1;
	if (rename(tmp, path) != 0) {
		local_err(err, "rename to", path, errno);
		goto out;
	}
	free(tmp);
	tmp = NULL;
	sync_dir_of(path);
	rc = 0;
out:
	if (d.fd >= 0)
		close(d.fd);
	if (tmp != NULL) {
		unlink(tmp);
		free(tmp);
	}
	botapi_req_free(&d.r);
	json_decref(file);
	return rc;
}

/* ---- plain HTTP ----------------------------------------------------------- */

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
	if (xrun_perform(ctx, e, "http", hx_finish, &h, &cc) != 0) {
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
