/*
 * xfer.c - test handler for tgrun_upload, tgrun_download and tgrun_http,
 * driven by the message text; every outcome is reported with sendMessage
 * "u<update_id> ..." so the test reads it from the fake's call records:
 *
 *   upload mem              sendDocument of XFER_MEM_LEN pattern bytes from memory
 *   upload path <path>      sendDocument of the file at <path>
 *   upload bad              sendDocument without chat_id (a 400)
 *   upload cancel           "upload mem" in a child that tgrun_all cancels after 1 s
 *   download <id> <path>    tgrun_download
 *   http get <url> [secs]   tgrun_http GET with an optional timeout
 *   http post <url> <body>  tgrun_http POST of a JSON body
 *   http cancel <url>       a GET in a child that tgrun_all cancels after 1 s
 *
 * Answers: "u<id> ok <file_id> <size> <file_name>" (uploads), "u<id> ok"
 * (downloads), "u<id> http <status> <len> <content_type> <body...>",
 * "u<id> cancelled <slot status> <error kind> <ms>", and for failures
 * "u<id> err <kind> <code> <description>".
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tgrun.h>

TGRUN_HANDLER;

#define XFER_MEM_LEN 70000

struct child {
	int64_t chat;
	const char *url;
	struct tgrun_error err;
};

/* sendMessage "u<update_id> <fmt...>" to the update's chat. */
static void report(struct tgrun_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void report(struct tgrun_ctx *ctx, const char *fmt, ...)
{
	char text[1024];
	struct tgrun_error err;
	json_t *res;
	va_list ap;
	int n;

	n = snprintf(text, sizeof(text), "u%lld ", (long long)tgrun_update_id(ctx));
	va_start(ap, fmt);
	vsnprintf(text + n, sizeof(text) - (size_t)n, fmt, ap);
	va_end(ap);
	res = tgrun_send_text(ctx, tgrun_chat_id(ctx), text, &err);
	if (res == NULL)
		tgrun_log(tgrun_bot(ctx), 4, "xfer: report: %s", err.description);
	json_decref(res);
}

static void report_err(struct tgrun_ctx *ctx, const struct tgrun_error *err)
{
	report(ctx, "err %d %d %s", (int)err->kind, err->error_code, err->description);
}

static unsigned char *pattern(void)
{
	unsigned char *b = malloc(XFER_MEM_LEN);

	for (size_t i = 0; b != NULL && i < XFER_MEM_LEN; i++)
		b[i] = (unsigned char)((i * 31 + 7) & 0xff);
	return b;
}

/* sendDocument of one file; NULL with err filled on failure. */
static json_t *send_doc(struct tgrun_ctx *ctx, int64_t chat, const char *path,
    struct tgrun_error *err)
{
	struct tgrun_file f = { .field = "document" };
	unsigned char *mem = NULL;
	json_t *params, *res;

	params = chat ? json_pack("{s:I, s:s, s:b}", "chat_id", (json_int_t)chat,
	    "caption", path ? "from path" : "from memory", "disable_notification", 1) :
	    json_pack("{s:s}", "caption", "no chat");
	if (path != NULL) {
		f.path = path;
	} else {
		mem = pattern();
		f.data = mem;
		f.len = XFER_MEM_LEN;
		f.filename = "mem.bin";
		f.content_type = "application/x-tgrun-test";
	}
	res = tgrun_upload(ctx, "sendDocument", params, &f, 1, err);
	free(mem);
	return res;
}

static void upload(struct tgrun_ctx *ctx, const char *path, int64_t chat)
{
	struct tgrun_error err;
	json_t *msg = send_doc(ctx, chat, path, &err), *doc;
	char rest[300];

	if (msg == NULL) {
		report_err(ctx, &err);
		return;
	}
	doc = json_object_get(msg, "document");
	snprintf(rest, sizeof(rest), "%s %lld %s",
	    json_string_value(json_object_get(doc, "file_id")),
	    (long long)json_integer_value(json_object_get(doc, "file_size")),
	    json_string_value(json_object_get(doc, "file_name")));
	report(ctx, "ok %s", rest);
	json_decref(msg);
}

static void http(struct tgrun_ctx *ctx, const char *method, const char *url,
    const char *body, double timeout)
{
	static const char *const json_hdrs[] = { "Content-Type: application/json",
	    "X-Tgrun-Test: 1", NULL };
	struct tgrun_http_request req = { .method = method, .url = url,
	    .headers = json_hdrs, .body = body, .body_len = body ? strlen(body) : 0,
	    .timeout = timeout };
	struct tgrun_http_response resp;
	struct tgrun_error err;
	char rest[700];
	size_t n;

	if (tgrun_http(ctx, &req, &resp, &err) != 0) {
		report_err(ctx, &err);
		return;
	}
	n = (size_t)snprintf(rest, sizeof(rest), "%d %zu %s ", resp.status, resp.body_len,
	    resp.content_type ? resp.content_type : "-");
	for (size_t i = 0; i < resp.body_len && n + 1 < sizeof(rest) && i < 400; i++) {
		unsigned char c = (unsigned char)resp.body[i];

		rest[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	rest[n] = '\0';
	report(ctx, "http %s", rest);
	tgrun_http_response_free(&resp);
}

static int child_upload(struct tgrun_ctx *ctx, void *arg)
{
	struct child *c = arg;
	json_t *res = send_doc(ctx, c->chat, NULL, &c->err);

	json_decref(res);
	return res ? 0 : -1;
}

static int child_http(struct tgrun_ctx *ctx, void *arg)
{
	struct child *c = arg;
	struct tgrun_http_request req = { .url = c->url };
	struct tgrun_http_response resp;
	int rc = tgrun_http(ctx, &req, &resp, &c->err);

	tgrun_http_response_free(&resp);
	return rc;
}

static void cancel_after_1s(struct tgrun_ctx *ctx, tgrun_fn fn, const char *url)
{
	struct child c = { .chat = tgrun_chat_id(ctx), .url = url };
	void *args[1] = { &c };
	struct tgrun_result r;
	struct timespec t0, t1;
	char rest[300];

	clock_gettime(CLOCK_MONOTONIC, &t0);
	tgrun_all(ctx, 1, &fn, args, &r, TGRUN_ALL_SETTLED, 1.0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	snprintf(rest, sizeof(rest), "%d %d %lld", (int)r.status, (int)c.err.kind,
	    (long long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
	report(ctx, "cancelled %s", rest);
}

int tgrun_handle(struct tgrun_ctx *ctx, const json_t *update)
{
	const char *text = json_string_value(json_object_get(
	    json_object_get(update, "message"), "text"));
	char a[512], b[512], c[1024];
	struct tgrun_error err;
	double secs = 0;

	if (text == NULL || tgrun_chat_id(ctx) == 0)
		return 0;
	if (strcmp(text, "upload mem") == 0)
		upload(ctx, NULL, tgrun_chat_id(ctx));
	else if (sscanf(text, "upload path %511s", a) == 1)
		upload(ctx, a, tgrun_chat_id(ctx));
	else if (strcmp(text, "upload bad") == 0)
		upload(ctx, NULL, 0);
	else if (strcmp(text, "upload cancel") == 0)
		cancel_after_1s(ctx, child_upload, NULL);
	else if (sscanf(text, "download %511s %511s", a, b) == 2) {
		if (tgrun_download(ctx, a, b, &err) == 0)
			report(ctx, "ok");
		else
			report_err(ctx, &err);
	} else if (sscanf(text, "http get %511s %lf", a, &secs) >= 1)
		http(ctx, "GET", a, NULL, secs);
	else if (sscanf(text, "http post %511s %1023[^\n]", a, c) == 2)
		http(ctx, "POST", a, c, 0);
	else if (sscanf(text, "http cancel %511s", a) == 1)
		cancel_after_1s(ctx, child_http, a);
	else
		report(ctx, "unknown command");
	return 0;
}
