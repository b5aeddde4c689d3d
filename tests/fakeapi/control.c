/* The /__fake/ control endpoint: push updates, set faults and webhook, read stats and records. */
#include "control.h"
#include "fault.h"
#include "files.h"
#include "gen.h"
#include "poll.h"
#include "record.h"
#include "server.h"
#include "stats.h"
#include "stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <sys/queue.h>
#include <event2/keyvalq_struct.h>

static json_t *
body_json(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);

	if (n == 0)
		return NULL;
	return json_loadb((const char *)evbuffer_pullup(in, -1), n, JSON_DECODE_ANY, NULL);
}

static void
bad(struct app *app, struct evhttp_request *req, const char *msg)
{
	server_error(app, req, 400, msg);
}

static void
push_updates(struct app *app, struct evhttp_request *req)
{
	json_t *body = body_json(req), *gen = json_object_get(body, "generate"), *u;
	int64_t first = stream_next_id(app->stream);
	char err[160];
	int rc = 0;
	size_t i;

	if (json_is_array(body)) {
		json_array_foreach(body, i, u) {
			if (stream_add(app->stream, u, err, sizeof(err)) < 0) {
				rc = -1;
				break;
			}
		}
	} else if (gen != NULL) {
		struct gen_opts o;

		gen_defaults(&o);
		rc = gen_opts_from_json(gen, &o, err, sizeof(err));
		if (rc == 0)
			rc = gen_run(app->stream, &o, err, sizeof(err));
	} else {
		snprintf(err, sizeof(err), "body must be an array of updates or "
		    "{\"generate\":{...}}");
		rc = -1;
	}
	json_decref(body);
	/* what was added before an error stays: make it visible like the rest */
	stream_release_all(app->stream);
	poll_wake(app);
	if (rc != 0) {
		bad(app, req, err);
		return;
	}
	evbuffer_add_printf(app->out, "{\"ok\":true,\"first_id\":%lld,\"last_id\":%lld}",
	    (long long)first, (long long)stream_next_id(app->stream) - 1);
	server_reply(app, req, 200, NULL);
}

/*
 * POST {"answers": [{"body": TEXT, "status": 200, "pad": N}, ...]}: raw
 * getUpdates answers, in order. "pad" replaces the first "@PAD@" in the body
 * with N bytes of 'x' (huge answers without huge requests).
 */
static void
script(struct app *app, struct evhttp_request *req)
{
	json_t *body, *answers, *a;
	size_t i;

	if (evhttp_request_get_command(req) == EVHTTP_REQ_GET) {
		poll_script_dump(app, app->out);
		server_reply(app, req, 200, NULL);
		return;
	}
	body = body_json(req);
	answers = json_object_get(body, "answers");
	if (!json_is_array(answers)) {
		json_decref(body);
		bad(app, req, "body must be {\"answers\": [{\"body\": ..., \"status\": ...}]}");
		return;
	}
	json_array_foreach(answers, i, a) {
		const char *text = json_string_value(json_object_get(a, "body"));
		json_int_t status = json_integer_value(json_object_get(a, "status"));
		json_int_t pad = json_integer_value(json_object_get(a, "pad"));
		const char *at = text ? strstr(text, "@PAD@") : NULL;

		if (text == NULL) {
			json_decref(body);
			bad(app, req, "every answer needs a string \"body\"");
			return;
		}
		if (at != NULL && pad > 0) {
			size_t pre = (size_t)(at - text), post = strlen(at + 5);
			size_t n = pre + (size_t)pad + post;
			char *big = util_xmalloc(n);

			memcpy(big, text, pre);
			memset(big + pre, 'x', (size_t)pad);
			memcpy(big + pre + pad, at + 5, post);
			poll_script_add(app, big, n, status ? (int)status : 200);
			free(big);
		} else {
			poll_script_add(app, text, json_string_length(json_object_get(a, "body")),
			    status ? (int)status : 200);
		}
	}
	json_decref(body);
	poll_script_dump(app, app->out);
	server_reply(app, req, 200, NULL);
}

static void
faults(struct app *app, struct evhttp_request *req, int clear)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct fault f;
	char err[160];
	json_t *body;

	if (clear || cmd == EVHTTP_REQ_DELETE) {
		fault_table_clear(app->faults);
	} else if (cmd == EVHTTP_REQ_POST) {
		body = body_json(req);
		if (fault_from_json(body, &f, err, sizeof(err)) != 0) {
			json_decref(body);
			bad(app, req, err);
			return;
		}
		json_decref(body);
		fault_table_set(app->faults, &f);
	}
	fault_table_json(app->faults, app->out);
	server_reply(app, req, 200, NULL);
}

static void
webhook(struct app *app, struct evhttp_request *req)
{
	const char *url;
	json_t *body;

	if (evhttp_request_get_command(req) == EVHTTP_REQ_POST) {
		body = body_json(req);
		url = json_string_value(json_object_get(body, "url"));
		if (body != NULL && !json_is_object(body)) {
			json_decref(body);
			bad(app, req, "body must be {\"url\": \"...\"}");
			return;
		}
		poll_set_webhook(app, url);
		json_decref(body);
	}
	url = poll_webhook(app);
	evbuffer_add(app->out, "{\"ok\":true,\"url\":", 17);
	if (url != NULL)
		util_evbuffer_add_json_string(app->out, url, strlen(url));
	else
		evbuffer_add(app->out, "null", 4);
	evbuffer_add(app->out, "}", 1);
	server_reply(app, req, 200, NULL);
}

static void
store_file(struct app *app, struct evhttp_request *req, struct evkeyvalq *q)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);
	const char *name = evhttp_find_header(q, "name");
	struct files_entry *e;

	e = files_add(app->files, "documents", name,
	    n ? (const char *)evbuffer_pullup(in, -1) : "", n);
	evbuffer_add_printf(app->out, "{\"ok\":true,\"file_id\":\"%s\",\"file_unique_id\":"
	    "\"%s\",\"file_path\":\"%s\",\"file_size\":%zu}", e->file_id, e->unique_id,
	    e->path, e->size);
	server_reply(app, req, 200, NULL);
}

static int
query_i64(struct evkeyvalq *q, const char *key, long long dflt, long long *out)
{
	const char *v = evhttp_find_header(q, key);

	*out = dflt;
	return v == NULL ? 0 : util_parse_i64(v, out);
}

static void
reads(struct app *app, struct evhttp_request *req, const char *path,
    struct evkeyvalq *q)
{
	long long a, b;
	long idx;

	if (strcmp(path, "echoes") == 0) {
		if (query_i64(q, "id", 0, &a) != 0 ||
		    (idx = stream_find(app->stream, a)) < 0) {
			server_error(app, req, 404, "Not Found: no such update");
			return;
		}
		stats_echoes_json(app->stats, app->stream, (size_t)idx, app->out);
	} else if (strcmp(path, "chatlog") == 0) {
		if (evhttp_find_header(q, "chat_id") == NULL ||
		    query_i64(q, "chat_id", 0, &a) != 0) {
			bad(app, req, "chatlog needs chat_id");
			return;
		}
		stats_chatlog_json(app->stats, app->stream, a, app->out);
	} else {	/* calls */
		const char *m = evhttp_find_header(q, "method");
		int mid = m ? stats_method_find(app->stats, m) : -1;

		if (query_i64(q, "since", 0, &a) != 0 || a < 0 ||
		    query_i64(q, "limit", 100000, &b) != 0 || b < 0) {
			bad(app, req, "since and limit must be integers >= 0");
			return;
		}
		if (m != NULL && mid < 0)
			evbuffer_add_printf(app->out, "{\"calls\":[],\"next\":%lld}", a);
		else
			record_json(app->record, app->stats, mid, (uint64_t)a, (size_t)b,
			    app->out);
	}
	server_reply(app, req, 200, NULL);
}

void
control_handle(struct app *app, struct evhttp_request *req, const char *path,
    const char *query)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evkeyvalq q;

	TAILQ_INIT(&q);
	if (query != NULL && evhttp_parse_query_str(query, &q) != 0) {
		bad(app, req, "malformed query string");
		goto out;
	}
	if (strcmp(path, "updates") == 0 && cmd == EVHTTP_REQ_POST)
		push_updates(app, req);
	else if (strcmp(path, "faults") == 0)
		faults(app, req, 0);
	else if (strcmp(path, "faults/clear") == 0)
		faults(app, req, 1);
	else if (strcmp(path, "webhook") == 0)
		webhook(app, req);
	else if (strcmp(path, "script") == 0)
		script(app, req);
	else if (strcmp(path, "stats") == 0) {
		stats_dump(app->stats, app->stream, poll_webhook(app), app->out);
		server_reply(app, req, 200, NULL);
	} else if (strcmp(path, "reset_stats") == 0 && cmd == EVHTTP_REQ_POST) {
		stats_reset(app->stats, app->stream);
		record_reset(app->record);
		evbuffer_add(app->out, "{\"ok\":true}", 11);
		server_reply(app, req, 200, NULL);
	} else if (strcmp(path, "files") == 0 && cmd == EVHTTP_REQ_POST)
		store_file(app, req, &q);
	else if (strcmp(path, "release") == 0 && cmd == EVHTTP_REQ_POST) {
		stream_hold(app->stream, 0, util_now_ms());
		poll_wake(app);
		evbuffer_add_printf(app->out, "{\"ok\":true,\"released\":%zu}",
		    stream_released(app->stream));
		server_reply(app, req, 200, NULL);
	} else if (strcmp(path, "polls") == 0) {
		long long since;

		if (query_i64(&q, "since", 0, &since) != 0 || since < 0) {
			bad(app, req, "since must be an integer >= 0");
			goto out;
		}
		poll_log_json(app, evhttp_find_header(&q, "via"), (size_t)since, app->out);
		server_reply(app, req, 200, NULL);
	} else if (strcmp(path, "echoes") == 0 || strcmp(path, "chatlog") == 0 ||
	    strcmp(path, "calls") == 0)
		reads(app, req, path, &q);
	else
		server_error(app, req, 404, "Not Found");
out:
	evhttp_clear_headers(&q);
}
