/* The worker's one transfer core: a curl easy handle run on the worker's multi while its fiber waits. */
#include "xfer.h"
#include "tgrun.h"
#include "worker.h"
#include "evcurl.h"
#include "log.h"
#include "sched.h"

#include <errno.h>
#include <stdlib.h>

/*
 * One run of an easy handle. The fiber and the deferred start each hold a
 * reference: the start may run after the fiber stopped waiting (it was
 * cancelled before it parked, or before the start ran) and must then find
 * `aborted` set, not a dead frame.
 */
struct xfer {
	struct worker *w;
	struct evcurl *ec;	/* the multi it runs on */
	CURL *easy;
	struct task *t;
	xfer_done_fn done;
	void *arg;
	CURLcode cc;
	int refs;
	int added;		/* on the multi */
	int ended;		/* done ran; the wake-up is ours */
	int aborted;		/* the fiber stopped waiting: touch nothing of it */
};

static void xfer_unref(struct xfer *x)
{
	if (--x->refs == 0)
		free(x);
}

static void xfer_end(struct xfer *x, CURLcode cc)
{
	x->cc = cc;
	x->ended = 1;
	if (x->done != NULL)
		x->done(x->easy, cc, x->arg);
	sched_wake(x->t);
}

/* evcurl's callback: the handle is already off the multi. */
static void xfer_finished(CURL *easy, CURLcode cc, void *arg)
{
	struct xfer *x = arg;

	x->added = 0;
	xfer_end(x, cc);
}

static void xfer_start(void *arg)
{
	struct xfer *x = arg;

	if (!x->aborted) {
		if (evcurl_add(x->ec, x->easy, xfer_finished, x) == 0)
			x->added = 1;
		else
			xfer_end(x, CURLE_FAILED_INIT);
	}
	xfer_unref(x);
}

/* The wait ends without the transfer: take it off the multi now, before the fiber runs. */
static void xfer_abort(struct task *t, void *obj)
{
	struct xfer *x = obj;

	x->aborted = 1;
	if (x->added) {
		evcurl_remove(x->ec, x->easy);
		x->added = 0;
	}
}

static int run_on(struct evcurl *ec, struct tgrun_ctx *ctx, CURL *easy,
    const char *what, xfer_done_fn done, void *arg, CURLcode *cc);

int xfer_run(struct tgrun_ctx *ctx, CURL *easy, const char *what,
    xfer_done_fn done, void *arg, CURLcode *cc)
{
	return run_on(ctx->bot->w->ec, ctx, easy, what, done, arg, cc);
}

int xfer_run_other(struct tgrun_ctx *ctx, CURL *easy, const char *what,
    xfer_done_fn done, void *arg, CURLcode *cc)
{
	return run_on(ctx->bot->w->ec_http, ctx, easy, what, done, arg, cc);
}

static int run_on(struct evcurl *ec, struct tgrun_ctx *ctx, CURL *easy,
    const char *what, xfer_done_fn done, void *arg, CURLcode *cc)
{
	struct worker *w = ctx->bot->w;
	struct xfer *x;
	int st;

	if (!ctx_in_fiber(ctx))
		fatalx("%s: %s: not in the context's fiber", __func__, what);
	if (tgrun_cancelled(ctx))
		return ECANCELED;
	x = calloc(1, sizeof(*x));
	if (x == NULL) {
		*cc = CURLE_OUT_OF_MEMORY;
		if (done != NULL)
			done(easy, *cc, arg);
		return 0;
	}
	x->w = w;
	x->ec = ec;
	x->easy = easy;
	x->t = ctx->task;
	x->done = done;
	x->arg = arg;
	x->refs = 2;
	if (sched_defer(w->sched, xfer_start, x) != 0)
		fatalx("%s: out of memory", __func__);
	/* Only the transfer's end wakes us with 0; anything else is a stray wake-up. */
	do
		st = sched_park(what, xfer_abort, x, -1);
	while (st == 0 && !x->ended);
	if (st == 0)
		*cc = x->cc;
	xfer_unref(x);
	return st == 0 ? 0 : ECANCELED;
}
