/* Waiting on a file descriptor from a fiber (tgrun_wait_fd), on the worker's event loop. */
#include "tgrun.h"
#include "worker.h"
#include "sched.h"

#include <errno.h>

#include <event2/event.h>

struct fdwait {
	struct event *ev;
	struct task *t;
	int ready;
};

static void on_fd(evutil_socket_t fd, short what, void *arg)
{
	struct fdwait *fw = arg;

	fw->ready = (what & EV_READ ? TGRUN_READ : 0) | (what & EV_WRITE ? TGRUN_WRITE : 0);
	sched_wake(fw->t);
}

static void fd_abort(struct task *t, void *obj)
{
	struct fdwait *fw = obj;

	event_del(fw->ev);
}

int tgrun_wait_fd(struct tgrun_ctx *ctx, int fd, int events, double timeout)
{
	struct fdwait fw = { NULL, NULL, 0 };
	short what = (events & TGRUN_READ ? EV_READ : 0) | (events & TGRUN_WRITE ? EV_WRITE : 0);
	int rc;

	if (fd < 0 || what == 0) {
		errno = EINVAL;
		return -1;
	}
	if (!ctx_in_fiber(ctx)) {
		errno = EPERM;
		return -1;
	}
	fw.t = ctx->task;
	fw.ev = event_new(ctx->bot->w->base, fd, what, on_fd, &fw);
	if (fw.ev == NULL || event_add(fw.ev, NULL) != 0) {
		if (fw.ev)
			event_free(fw.ev);
		errno = EINVAL;
		return -1;
	}
	rc = ctx_park(ctx, "fd", fd_abort, &fw, ctx_timeout_ms(timeout));
	event_free(fw.ev);
	if (rc == 0)
		return fw.ready;
	return errno == ETIMEDOUT ? 0 : -1;
}
