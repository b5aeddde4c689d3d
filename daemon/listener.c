/* Listening sockets that pause, rather than spin, at their connection cap or out of descriptors. */
#include "listener.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/listener.h>

/* Failures of accept() are logged at most this often, with a count of the rest. */
#define LOG_INTERVAL_MS 60000

struct listener {
	struct evconnlistener *lev;
	struct event *retry;		/* ends a pause after accept() failed */
	listener_accept_cb *cb;
	void *arg;
	char what[32];
	int max;
	int open;			/* connections the owner has open */
	int paused;			/* lev is disabled */
	int backing_off;		/* paused after accept() failed */
	struct log_rate rate;
};

static void update(struct listener *l);
static void on_accept(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg);
static void on_accept_error(struct evconnlistener *lev, void *arg);
static void on_retry(evutil_socket_t fd, short what, void *arg);

struct listener *listener_new(struct event_base *base, evutil_socket_t fd,
    const char *what, int max, listener_accept_cb *cb, void *arg)
{
	struct listener *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return NULL;
	if ((l->retry = evtimer_new(base, on_retry, l)) == NULL)
		goto fail;
	/* Backlog -1: the socket is listening already. */
	l->lev = evconnlistener_new(base, on_accept, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (l->lev == NULL)
		goto fail;
	evconnlistener_set_error_cb(l->lev, on_accept_error);
	l->cb = cb;
	l->arg = arg;
	l->max = max;
	snprintf(l->what, sizeof(l->what), "%s", what);
	return l;
fail:
	if (l->retry != NULL)
		event_free(l->retry);
	free(l);
	return NULL;
}

void listener_free(struct listener *l)
{
	if (l == NULL)
		return;
	evconnlistener_free(l->lev);
	event_free(l->retry);
	free(l);
}

void listener_opened(struct listener *l)
{
	l->open++;
	update(l);
}

void listener_closed(struct listener *l)
{
	l->open--;
	update(l);
}

/* Accept exactly when neither at the cap nor backing off. */
static void update(struct listener *l)
{
	int pause = l->backing_off || (l->max > 0 && l->open >= l->max);

	if (pause == l->paused)
		return;
	l->paused = pause;
	if (pause)
		evconnlistener_disable(l->lev);
	else
		evconnlistener_enable(l->lev);
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct listener *l = arg;

	l->cb(l->arg, fd);
}

/*
 * accept() failed with what libevent does not retry by itself. Out of
 * descriptors the socket stays readable and accept() fails again at once:
 * trying on would spin, logging each time.
 */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
	struct timeval tv = { LISTENER_BACKOFF_MS / 1000,
	    (LISTENER_BACKOFF_MS % 1000) * 1000 };
	struct listener *l = arg;
	int err = EVUTIL_SOCKET_ERROR();
	unsigned long held;

	if (log_rate_pass(&l->rate, LOG_INTERVAL_MS, &held))
		log_warn("%s: accept: %s; not accepting for %d ms (%lu more such "
		    "failures since the last line like this)", l->what, strerror(err),
		    LISTENER_BACKOFF_MS, held);
	l->backing_off = 1;
	update(l);
	evtimer_add(l->retry, &tv);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	l->backing_off = 0;
	update(l);
}
