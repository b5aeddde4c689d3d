/* HTTP front: routing, the life of one Bot API call (faults, latency), replies. */
#include "server.h"
#include "control.h"
#include "files.h"
#include "methods.h"
#include "poll.h"
#include "stats.h"
#include "hmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/keyvalq_struct.h>

struct server {
	struct evhttp_bound_socket *sock;
	struct call *calls;	/* every call not yet answered */
	struct hmap conns;	/* client port -> the connection seen on it */
};

static void call_execute(struct call *c);
static void note_api_connection(struct app *app, struct evhttp_request *req);

static const char *
reason(int code)
{
	switch (code) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 409: return "Conflict";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	default: return "Status";
	}
}

void
server_reply(struct app *app, struct evhttp_request *req, int code, const char *ctype)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    ctype ? ctype : "application/json");
	evhttp_send_reply(req, code, reason(code), app->out);
	evbuffer_drain(app->out, evbuffer_get_length(app->out));
}

static void
error_body(struct app *app, int code, const char *description)
{
	evbuffer_drain(app->out, evbuffer_get_length(app->out));
	evbuffer_add_printf(app->out, "{\"ok\":false,\"error_code\":%d,\"description\":",
	    code);
	util_evbuffer_add_json_string(app->out, description, strlen(description));
	evbuffer_add(app->out, "}", 1);
}

void
server_error(struct app *app, struct evhttp_request *req, int code,
    const char *description)
{
	error_body(app, code, description);
	server_reply(app, req, code, NULL);
}

static void
call_free(struct call *c)
{
	struct server *srv = c->app->server;

	if (c->concurrent)
		stats_concurrent_dec(c->app->stats);
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	params_free(&c->params);
	free(c);
}

void
server_call_reply(struct call *c, int code, const char *ctype)
{
	if (c->poll_log)
		poll_log_end(c, code);
	stats_count_response(c->app->stats, code);
	server_reply(c->app, c->req, code, ctype);
	call_free(c);
}

void
server_call_error(struct call *c, int code, const char *description)
{
	error_body(c->app, code, description);
	server_call_reply(c, code, NULL);
}

/* Close the connection under req, optionally after writing raw bytes; the reply
 * that follows fails on the shut socket and lets libevent free the connection. */
static void
call_hangup(struct call *c, const char *raw, size_t len)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(c->req);

	if (conn != NULL) {
		int fd = bufferevent_getfd(evhttp_connection_get_bufferevent(conn));

		if (fd >= 0) {
			if (raw != NULL && write(fd, raw, len) < 0)
				fprintf(stderr, "fakeapi: write(truncated reply): failed\n");
			shutdown(fd, SHUT_RDWR);
		}
	}
	evbuffer_drain(c->app->out, evbuffer_get_length(c->app->out));
	server_reply(c->app, c->req, 500, NULL);
	call_free(c);
}

static void
inject(struct call *c)
{
	struct app *app = c->app;
	char desc[96];
	static const char html[] = "<html>\r\n<head><title>502 Bad Gateway</title>"
	    "</head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n"
	    "<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n";
	static const char trunc[] = "HTTP/1.1 200 OK\r\nServer: nginx/1.18.0\r\n"
	    "Content-Type: application/json\r\nContent-Length: 4096\r\n"
	    "Connection: keep-alive\r\n\r\n{\"ok\":true,\"result\":{\"message_id\":";

	switch (c->fd.kind) {
	case FAULT_429:
		snprintf(desc, sizeof(desc), "Too Many Requests: retry after %g",
		    c->fd.retry_after);
		evbuffer_add_printf(app->out, "{\"ok\":false,\"error_code\":429,"
		    "\"description\":\"%s\",\"parameters\":{\"retry_after\":%g}}", desc,
		    c->fd.retry_after);
		server_call_reply(c, 429, NULL);
		break;
	case FAULT_500:
		server_call_error(c, 500, "Internal Server Error");
		break;
	case FAULT_502:
		evbuffer_add(app->out, html, sizeof(html) - 1);
		server_call_reply(c, 502, "text/html");
		break;
	case FAULT_BADJSON:
		evbuffer_add_printf(app->out, "{\"ok\":true,\"result\":{\"message_id\":1,"
		    "\"text\":\"unterminated");
		server_call_reply(c, 200, NULL);
		break;
	case FAULT_DROP:
		call_hangup(c, NULL, 0);
		break;
	case FAULT_TRUNCATE:
		call_hangup(c, trunc, sizeof(trunc) - 1);
		break;
	case FAULT_NONE:
		break;
	}
}

static void
delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct call *c = arg;

	event_free(c->timer);
	c->timer = NULL;
	call_execute(c);
}

static void
call_execute(struct call *c)
{
	if (c->fd.kind != FAULT_NONE) {
		if (!c->is_get_updates)
			methods_record(c);
		inject(c);
	} else if (c->is_get_updates)
		poll_get_updates(c);
	else
		methods_call(c);
}

static int
valid_name(const char *m, size_t n, size_t max, int dash)
{
	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = m[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '_' || (dash && ch == '-')))
			return 0;
	}
	return 1;
}

static int
valid_method(const char *m, size_t n)
{
	return valid_name(m, n, 64, 0);
}

static void
call_start(struct app *app, struct evhttp_request *req, const char *method,
    size_t mlen, const char *query, const char *via)
{
	struct call *c;
	char err[160];
	int mid = stats_method_intern(app->stats, method, mlen);

	if (mid < 0) {
		stats_count_response(app->stats, 400);
		server_error(app, req, 400, "Bad Request: too many distinct methods");
		return;
	}
	c = util_xcalloc(1, sizeof(*c));
	c->app = app;
	c->req = req;
	c->mid = mid;
	c->method = stats_method_name(app->stats, mid);
	c->is_get_updates = strcmp(c->method, "getUpdates") == 0;
	c->t_ms = util_now_ms();
	snprintf(c->via, sizeof(c->via), "%s", via);
	c->next = app->server->calls;
	if (c->next)
		c->next->prev = c;
	app->server->calls = c;
	stats_count_call(app->stats, mid);
	if (!c->is_get_updates) {
		c->concurrent = 1;
		stats_concurrent_inc(app->stats);
	}
	if (params_parse(req, query, &c->params, err, sizeof(err)) != 0) {
		if (c->params.obj == NULL)
			c->params.obj = json_object();
		server_call_error(c, 400, err);
		return;
	}
	if (c->is_get_updates)
		poll_log_start(c);
	if (fault_decide(app->faults, c->method, &app->rng, &c->fd)) {
		if (c->fd.kind != FAULT_NONE)
			stats_count_fault(app->stats, mid);
		if (c->fd.delay_ms > 0) {
			struct timeval tv;

			tv.tv_sec = (time_t)(c->fd.delay_ms / 1000);
			tv.tv_usec = (suseconds_t)((c->fd.delay_ms - (double)tv.tv_sec * 1000) *
			    1000);
			c->timer = evtimer_new(app->base, delay_cb, c);
			evtimer_add(c->timer, &tv);
			return;
		}
	}
	call_execute(c);
}

static void
serve_file(struct app *app, struct evhttp_request *req, const char *path)
{
	char *decoded = evhttp_uridecode(path, 0, NULL);
	struct files_entry *e = decoded ? files_find_path(app->files, decoded) : NULL;

	free(decoded);
	if (e == NULL) {
		stats_count_response(app->stats, 404);
		server_error(app, req, 404, "Not Found");
		return;
	}
	stats_count_response(app->stats, 200);
	evbuffer_add(app->out, e->data, e->size);
	server_reply(app, req, 200, "application/octet-stream");
}

/* "/bot<token>/<rest>": 1 with rest set if the token matches, 0 if it does not. */
static int
token_ok(struct app *app, const char *after_bot, const char **rest)
{
	const char *slash = strchr(after_bot, '/');

	if (slash == NULL)
		return -1;
	*rest = slash + 1;
	return (size_t)(slash - after_bot) == app->token_len &&
	    memcmp(after_bot, app->token, app->token_len) == 0;
}

static void
route(struct evhttp_request *req, void *arg)
{
	struct app *app = arg;
	const char *uri = evhttp_request_get_uri(req), *rest, *q, *path = NULL;
	char whole[2048], via[VIA_MAX + 1] = "";
	size_t plen;
	int ok;

	q = strchr(uri, '?');
	plen = q ? (size_t)(q - uri) : strlen(uri);
	if (plen >= sizeof(whole)) {
		server_error(app, req, 404, "Not Found");
		return;
	}
	memcpy(whole, uri, plen);
	whole[plen] = '\0';
	path = whole;
	q = q ? q + 1 : NULL;
	/* /__via/<name>/...: the client names itself (one api_url per client). */
	if (strncmp(path, "/__via/", 7) == 0) {
		const char *name = path + 7, *end = strchr(name, '/');

		if (end == NULL || !valid_name(name, (size_t)(end - name), VIA_MAX, 1)) {
			server_error(app, req, 404, "Not Found");
			return;
		}
		memcpy(via, name, (size_t)(end - name));
		via[end - name] = '\0';
		path = end;
	}
	if (strncmp(path, "/__fake/", 8) == 0) {
		control_handle(app, req, path + 8, q);
		return;
	}
	if (strncmp(path, "/bot", 4) == 0 && (ok = token_ok(app, path + 4, &rest)) >= 0) {
		if (!ok) {
			stats_count_response(app->stats, 401);
			server_error(app, req, 401, "Unauthorized");
		} else if (!valid_method(rest, strlen(rest))) {
			stats_count_response(app->stats, 404);
			server_error(app, req, 404, "Not Found");
		} else {
			note_api_connection(app, req);
			call_start(app, req, rest, strlen(rest), q, via);
		}
		return;
	}
	if (strncmp(path, "/file/bot", 9) == 0 && (ok = token_ok(app, path + 9, &rest)) >= 0) {
		if (!ok) {
			stats_count_response(app->stats, 401);
			server_error(app, req, 401, "Unauthorized");
		} else
			serve_file(app, req, rest);
		return;
	}
	server_error(app, req, 404, "Not Found");
}

/* Called for every accepted connection: count it, let evhttp make its bufferevent. */
static struct bufferevent *
on_accept(struct event_base *base, void *arg)
{
	struct app *app = arg;

	stats_count_connection(app->stats);
	return NULL;
}

/*
 * Count the connections that carry Bot API calls (tests read connections
 * per 1,000 calls; their own control requests do not count). An open
 * connection is known by its client port and its evhttp connection.
 */
static void
api_connection_closed(struct evhttp_connection *conn, void *arg)
{
	struct app *app = arg;

	if (app->server != NULL)
		stats_count_api_connection(app->stats, 0);
}

static void
note_api_connection(struct app *app, struct evhttp_request *req)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	char *addr = NULL;
	ev_uint16_t port = 0;
	int64_t *seen;

	if (conn == NULL)
		return;
	evhttp_connection_get_peer(conn, &addr, &port);
	seen = hmap_put(&app->server->conns, (int64_t)port, 0);
	if (*seen != (int64_t)(intptr_t)conn) {
		*seen = (int64_t)(intptr_t)conn;
		stats_count_api_connection(app->stats, 1);
		evhttp_connection_set_closecb(conn, api_connection_closed, app);
	}
}

int
server_start(struct app *app, int port)
{
	struct server *srv = util_xcalloc(1, sizeof(*srv));
	evutil_socket_t fd;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	app->server = srv;
	hmap_init(&srv->conns);
	app->http = evhttp_new(app->base);
	if (app->http == NULL)
		return -1;
	evhttp_set_allowed_methods(app->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT);
	evhttp_set_max_body_size(app->http, 256 << 20);
	evhttp_set_timeout(app->http, 120);
	evhttp_set_gencb(app->http, route, app);
	evhttp_set_bevcb(app->http, on_accept, app);
	srv->sock = evhttp_bind_socket_with_handle(app->http, "127.0.0.1",
	    (ev_uint16_t)port);
	if (srv->sock == NULL)
		return -1;
	fd = evhttp_bound_socket_get_fd(srv->sock);
	/*
	 * libevent listens with a backlog of 128. A client that opens hundreds
	 * of connections at once (two workers' first calls of a burst) would
	 * have SYNs dropped, each retried a second later: a whole benchmark run
	 * then takes up to twice as long. Linux takes a second listen() as a
	 * new backlog (capped by net.core.somaxconn).
	 */
	if (listen(fd, 4096) != 0)
		return -1;
	/*
	 * Accepted sockets inherit TCP_NODELAY on Linux. Without it a large
	 * answer's last partial segment waits for the client's delayed ACK
	 * (40 ms per getUpdates batch).
	 */
	{
		int one = 1;

		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
		return -1;
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

void
server_stop(struct app *app)
{
	struct server *srv = app->server;

	if (srv == NULL)
		return;
	/* answer what is left so libevent frees requests it no longer tracks */
	while (srv->calls != NULL)
		server_call_error(srv->calls, 503, "Service Unavailable: shutting down");
	if (app->http != NULL)
		evhttp_free(app->http);
	app->http = NULL;
	hmap_free(&srv->conns);
	free(srv);
	app->server = NULL;
}
