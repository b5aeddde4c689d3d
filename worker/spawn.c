/* Fibers a handler starts: spawn, join, all, and periodic tasks (every). */
#include "tgrun.h"
#include "worker.h"
#include "log.h"
#include "sched.h"

#include <errno.h>
#include <stdlib.h>

struct tgrun_fiber {
	struct tgrun_ctx *ctx;		/* the child's own context */
	struct worker *w;
	tgrun_fn fn;
	void *arg;
	int ret;
	int finished;
	int detached;
	int refs;			/* the running fiber + the owning update */
	struct task *joiner;		/* parked in tgrun_join */
	struct all_group *group;	/* set by tgrun_all */
	size_t slot;
	struct wupdate *owner;		/* update whose end releases the handle */
	SLIST_ENTRY(tgrun_fiber) link;	/* in owner->handles */
};

struct all_group {
	size_t remaining;
	int fail_fast;
	int failed;
	struct task *waiter;
	struct tgrun_result *results;
	struct tgrun_fiber **kids;
	size_t n;
};

static void handle_release(struct tgrun_fiber *f)
{
	if (--f->refs > 0)
		return;
	free(f);
}

static void child_main(struct task *t, void *arg)
{
	struct tgrun_fiber *f = arg;

	f->ret = f->fn(f->ctx, f->arg);
}

static void group_child_done(struct all_group *g, struct tgrun_fiber *f)
{
	struct tgrun_result *r = &g->results[f->slot];

	if (f->ctx->task != NULL && task_cancelled(f->ctx->task) && f->ret != 0) {
		if (r->status != TGRUN_SLOT_TIMEOUT)
			r->status = TGRUN_SLOT_CANCELLED;
	} else {
		r->status = f->ret == 0 ? TGRUN_SLOT_OK : TGRUN_SLOT_FAILED;
	}
	r->ret = f->ret;
	g->remaining--;
	/* Without an owning update the handle is freed right after this. */
	g->kids[f->slot] = NULL;
	if (f->ret != 0 && g->fail_fast && !g->failed) {
		g->failed = 1;
		for (size_t i = 0; i < g->n; i++)
			if (g->kids[i] != NULL && !g->kids[i]->finished &&
			    g->kids[i] != f)
				sched_cancel(g->kids[i]->ctx->task);
	}
	if (g->remaining == 0 && g->waiter != NULL)
		sched_wake(g->waiter);
}

/* On the scheduler's stack, once the child's function returned. */
static void child_done(struct task *t, void *arg)
{
	struct tgrun_fiber *f = arg;
	struct wupdate *u = f->ctx->u;

	f->finished = 1;
	if (f->detached && f->ret != 0)
		log_warn("detached fiber failed (returned %d)", f->ret);
	if (f->group != NULL)
		group_child_done(f->group, f);
	if (f->joiner != NULL)
		sched_wake(f->joiner);
	f->ctx->task = NULL;
	ctx_free(f->ctx);
	f->ctx = NULL;
	if (u != NULL && !f->detached) {
		u->live_children--;
		if (u->live_children == 0 && u->main_waiting)
			sched_wake(u->main);
	}
	handle_release(f);
}

struct tgrun_fiber *tgrun_spawn(struct tgrun_ctx *ctx, tgrun_fn fn, void *arg,
    int flags)
{
	struct worker *w;
	struct tgrun_fiber *f;
	struct task *t;

	if (ctx == NULL || fn == NULL) {
		errno = EINVAL;
		return NULL;
	}
	if (!ctx_in_fiber(ctx)) {
		errno = EPERM;
		return NULL;
	}
	w = ctx->bot->w;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return NULL;
	f->w = w;
	f->fn = fn;
	f->arg = arg;
	f->detached = (flags & TGRUN_DETACHED) != 0;
	f->ctx = ctx_new(ctx->bot, f->detached ? NULL : ctx->u);
	if (f->ctx == NULL) {
		free(f);
		return NULL;
	}
	t = sched_spawn(w->sched, child_main, f, child_done, f);
	if (t == NULL) {
		ctx_free(f->ctx);
		free(f);
		return NULL;
	}
	f->ctx->task = t;
	task_set_data(t, f->ctx);
	f->refs = 1;
	if (ctx->u != NULL) {
		/* The handle stays valid until the spawning update ends. */
		f->refs++;
		f->owner = ctx->u;
		SLIST_INSERT_HEAD(&ctx->u->handles, f, link);
		if (!f->detached)
			ctx->u->live_children++;
	}
	return f;
}

void spawn_release_handles(struct wupdate *u)
{
	struct tgrun_fiber *f;

	while ((f = SLIST_FIRST(&u->handles)) != NULL) {
		SLIST_REMOVE_HEAD(&u->handles, link);
		handle_release(f);
	}
}

static void join_abort(struct task *t, void *obj)
{
	struct tgrun_fiber *f = obj;

	if (f->joiner == t)
		f->joiner = NULL;
}

int tgrun_join(struct tgrun_ctx *ctx, struct tgrun_fiber *f, double timeout, int *ret)
{
	if (f == NULL || ctx == NULL || f->ctx == ctx) {
		errno = EINVAL;
		return -1;
	}
	if (!f->finished) {
		if (f->joiner != NULL) {
			errno = EINVAL;	/* one joiner at a time */
			return -1;
		}
		f->joiner = ctx->task;
		if (ctx_park(ctx, "join", join_abort, f, ctx_timeout_ms(timeout)) != 0) {
			f->joiner = NULL;
			return -1;
		}
		f->joiner = NULL;
	}
	if (ret != NULL)
		*ret = f->ret;
	return 0;
}

static void all_abort(struct task *t, void *obj)
{
	struct all_group *g = obj;

	g->waiter = NULL;
}

int tgrun_all(struct tgrun_ctx *ctx, size_t n, const tgrun_fn *fns,
    void *const *args, struct tgrun_result *results, int flags, double timeout)
{
	struct all_group g = { .remaining = 0, .fail_fast = flags & TGRUN_ALL_FAIL_FAST,
	    .results = results, .n = n };
	int rc = 0;

	if (!ctx_in_fiber(ctx) || (n > 0 && (fns == NULL || results == NULL))) {
		errno = ctx_in_fiber(ctx) ? EINVAL : EPERM;
		return -1;
	}
	g.kids = calloc(n ? n : 1, sizeof(*g.kids));
	if (g.kids == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		results[i].status = TGRUN_SLOT_CANCELLED;
		results[i].ret = -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct tgrun_fiber *f = tgrun_spawn(ctx, fns[i], args ? args[i] : NULL, 0);

		if (f == NULL) {
			results[i].status = TGRUN_SLOT_FAILED;
			continue;
		}
		f->group = &g;
		f->slot = i;
		g.kids[i] = f;
		g.remaining++;
	}
	if (g.remaining > 0) {
		g.waiter = ctx->task;
		if (ctx_park(ctx, "all", all_abort, &g, ctx_timeout_ms(timeout)) != 0) {
			int why = errno;

			/* Timed out or cancelled: stop the rest and wait for them. */
			for (size_t i = 0; i < n; i++) {
				if (g.kids[i] == NULL || g.kids[i]->finished)
					continue;
				if (why == ETIMEDOUT)
					results[i].status = TGRUN_SLOT_TIMEOUT;
				sched_cancel(g.kids[i]->ctx->task);
			}
			while (g.remaining > 0) {
				g.waiter = ctx->task;
				(void)sched_park_nocancel("all: cancelling", -1);
			}
		}
		g.waiter = NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (g.kids[i] != NULL)
			g.kids[i]->group = NULL;
		if (results[i].status != TGRUN_SLOT_OK)
			rc = -1;
	}
	free(g.kids);
	return rc;
}

struct every {
	struct tgrun_ctx *ctx;
	int64_t interval_ms;
	tgrun_fn fn;
	void *arg;
};

static void every_main(struct task *t, void *arg)
{
	struct every *e = arg;

	for (;;) {
		if (sched_park("every", NULL, NULL, e->interval_ms) == ECANCELED)
			break;
		if (e->fn(e->ctx, e->arg) != 0)
			log_warn("periodic task failed");
		if (tgrun_cancelled(e->ctx))
			break;
	}
}

static void every_done(struct task *t, void *arg)
{
	struct every *e = arg;

	e->ctx->task = NULL;
	ctx_free(e->ctx);
	free(e);
}

int tgrun_every(struct tgrun_bot *bot, double interval, tgrun_fn fn, void *arg)
{
	struct every *e;
	struct task *t;

	if (bot == NULL || fn == NULL || interval <= 0) {
		errno = EINVAL;
		return -1;
	}
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return -1;
	e->interval_ms = ctx_timeout_ms(interval);
	e->fn = fn;
	e->arg = arg;
	e->ctx = ctx_new(bot, NULL);
	if (e->ctx == NULL) {
		free(e);
		return -1;
	}
	t = sched_spawn(bot->w->sched, every_main, e, every_done, e);
	if (t == NULL) {
		ctx_free(e->ctx);
		free(e);
		return -1;
	}
	e->ctx->task = t;
	task_set_data(t, e->ctx);
	return 0;
}
