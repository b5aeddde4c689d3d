/* The fake Bot API's context: every subsystem hangs off one struct app. */
#ifndef FAKEAPI_APP_H
#define FAKEAPI_APP_H

#include <stddef.h>
#include <event2/event.h>
#include <event2/http.h>

#include "util.h"

struct opts;
struct stream;
struct stats;
struct record;
struct fault_table;
struct files;
struct message_state;
struct poll;
struct server;

struct app {
	struct event_base *base;
	struct evhttp *http;
	const struct opts *opts;
	const char *token;
	size_t token_len;
	struct stream *stream;
	struct stats *stats;
	struct record *record;
	struct fault_table *faults;
	struct files *files;
	struct message_state *msgs;
	struct poll *poll;
	struct server *server;
	struct util_rng rng;		/* faults and jitter */
	struct evbuffer *out;		/* scratch body, drained by every reply */
};

#endif
