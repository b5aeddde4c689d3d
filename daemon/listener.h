/* Listening sockets that pause, rather than spin, at their connection cap or out of descriptors. */
#ifndef TGRUN_LISTENER_H
#define TGRUN_LISTENER_H

#include <event2/util.h>

struct event_base;
struct sockaddr;
struct listener;

/* How long accepting pauses after accept() failed. */
#define LISTENER_BACKOFF_MS 100

/* A new connection `fd`, now the callee's to close. */
typedef void listener_accept_cb(void *arg, evutil_socket_t fd);

/*
 * Accept connections on `fd` (bound and listening; the listener closes it
 * when freed) and hand each to `cb`. With `max` > 0 it stops accepting at
 * `max` open connections, as counted by listener_opened() and
 * listener_closed(), until one closes: the others wait in the backlog.
 * When accept() fails (out of descriptors: EMFILE, ENFILE; out of memory)
 * it stops for LISTENER_BACKOFF_MS instead of failing again at once, and
 * logs at most one line a minute about it. `what` names it in log lines.
 * NULL if out of memory (fd is then still the caller's).
 */
struct listener *listener_new(struct event_base *base, evutil_socket_t fd,
    const char *what, int max, listener_accept_cb *cb, void *arg)
	__attribute__((warn_unused_result));
/* Stop listening and close the socket. Connections are the owner's. */
void listener_free(struct listener *l);
/* The owner took a connection, or closed one. */
void listener_opened(struct listener *l);
void listener_closed(struct listener *l);

#endif
