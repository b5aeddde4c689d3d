/* Multipart uploads to the Bot API (tgrun_upload), sent with tgrun_call's retries. */
#include "tgrun.h"
#include "worker.h"
#include "botapi.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A multipart Bot API call: the request (URL with the token) and its form. */
struct upload {
	struct botapi_req r;
	curl_mime *mime;
};

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

json_t *tgrun_upload(struct tgrun_ctx *ctx, const char *method, json_t *params,
    const struct tgrun_file *files, size_t n, struct tgrun_error *err)
{
	struct upload up;
	json_t *result = NULL;

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
	if (upload_prepare(ctx->bot->w, &up, method, params, files, n, err) != 0)
		goto out;
	result = api_send(ctx, method, params, &up.r, err);
out:
	botapi_req_free(&up.r);		/* the easy handle first, then its form */
	curl_mime_free(up.mime);
	json_decref(params);
	return result;
}
