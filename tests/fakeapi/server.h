/* HTTP front: routing, the life of one Bot API call (faults, latency), replies. */
#ifndef FAKEAPI_SERVER_H
#define FAKEAPI_SERVER_H

#include <event2/event.h>
#include <event2/http.h>

#include "app.h"
#include "fault.h"
#include "params.h"

/* A client's name in /__via/<name>/bot...: 1..32 of [A-Za-z0-9_-]. */
#define VIA_MAX 32

/* One Bot API request from arrival to its reply. */
struct call {
	struct app *app;
	struct evhttp_request *req;
	int mid;
	const char *method;
	int is_get_updates;
	int concurrent;		/* counted in stats' concurrent requests */
	struct params params;
	double t_ms;		/* arrival */
	char via[VIA_MAX + 1];		/* the client's name from /__via/<name>/bot..., or "" */
	size_t poll_log;	/* getUpdates: its entry in the poll log + 1, or 0 */
	struct fault_decision fd;
	struct event *timer;	/* latency fault or long poll */
	struct call *prev, *next;
};

/* Bind 127.0.0.1:port (0 = any free port); returns the bound port or -1. */
int server_start(struct app *app, int port);
/* Answer what is still pending and free the HTTP server. */
void server_stop(struct app *app);

/* Reply with app->out (drained) as the body; frees the call. */
void server_call_reply(struct call *c, int code, const char *ctype);
/* Telegram-style error {"ok":false,...}; frees the call. */
void server_call_error(struct call *c, int code, const char *description);
/* Reply to a non-call request (control, files) with app->out. */
void server_reply(struct app *app, struct evhttp_request *req, int code,
    const char *ctype);
void server_error(struct app *app, struct evhttp_request *req, int code,
    const char *description);

#endif
