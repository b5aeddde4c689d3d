/* File downloads (tgrun_download): getFile, then the file streamed to a temporary file and renamed. */
#include "tgrun.h"
#include "clock.h"
#include "worker.h"
#include "backoff.h"
#include "botapi.h"
#include "log.h"
#include "sched.h"
#include "xfer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ERR_BODY_MAX	4096		/* kept of a refused download's answer */

/* A file download: the request, the temporary file, an error answer in r.resp. */
struct dl {
	struct botapi_req r;
	int fd;
	int wr_errno;		/* write() failed: a local error, not retried */
	long status;
};

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
		if (xfer_run(ctx, d->r.easy, "download", dl_finish, d, &cc) != 0) {
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

