/* Waiters: a fiber waits until done() was called n times (from fibers or any callback). */
#include "tgrun.h"
#include "worker.h"
#include "log.h"
#include "sched.h"

#include <errno.h>
#include <stdlib.h>

struct tgrun_waiter {
	int need, count;
	struct task *waiting;
};

struct tgrun_waiter *tgrun_waiter_new(struct tgrun_ctx *ctx, int n)
{
	struct tgrun_waiter *w;

	if (n < 0) {
		errno = EINVAL;
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (w != NULL)
		w->need = n;
	return w;
}

static void waiter_abort(struct task *t, void *obj)
{
	struct tgrun_waiter *w = obj;

	w->waiting = NULL;
}

int tgrun_waiter_wait(struct tgrun_waiter *w, double timeout)
{
	struct task *t = sched_current();
	int st;

	if (w == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (w->count >= w->need)
		return 0;
	if (t == NULL || w->waiting != NULL) {
		errno = t == NULL ? EPERM : EINVAL;
		return -1;
	}
	w->waiting = t;
	st = sched_park("waiter", waiter_abort, w, ctx_timeout_ms(timeout));
	w->waiting = NULL;
	if (st != 0) {
		errno = st;
		return -1;
	}
	return 0;
}

int tgrun_waiter_done(struct tgrun_waiter *w)
{
	if (w == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (w->count >= w->need) {
		log_warn("tgrun_waiter_done: called more than the %d times it waits for",
		    w->need);
		errno = EOVERFLOW;
		return -1;
	}
	if (++w->count >= w->need && w->waiting != NULL) {
		struct task *t = w->waiting;

		w->waiting = NULL;
		sched_wake(t);
	}
	return 0;
}

void tgrun_waiter_free(struct tgrun_waiter *w)
{
	free(w);
}
