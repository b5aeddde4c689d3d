/* The handler API's fiber side: sleep, spawn/join/all, waiters, fd waits, locks, every. */
#include "tgrun.h"
#include "worker.h"
#include "log.h"
#include "sched.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

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
	struct tgrun_fiber *next;	/* in owner->handles */
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

struct tgrun_waiter {
	int need, count;
	struct task *waiting;
};

static int64_t secs_to_ms(double s)
{
	return s < 0 ? -1 : (int64_t)(s * 1000.0 + 0.5);
}

/* ---- contexts --------------------------------------------------------------- */

static void ctx_link(struct tgrun_ctx **head, struct tgrun_ctx *c)
{
	c->prev = NULL;
	c->next = *head;
	if (*head)
		(*head)->prev = c;
	*head = c;
}

static void ctx_unlink(struct tgrun_ctx **head, struct tgrun_ctx *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else if (*head == c)
		*head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
}

struct tgrun_ctx *ctx_new(struct tgrun_bot *bot, struct wupdate *u)
{
	struct tgrun_ctx *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->bot = bot;
	c->u = u;
	ctx_link(u ? &u->ctxs : &bot->w->background, c);
	return c;
}

void ctx_free(struct tgrun_ctx *c)
{
	if (c == NULL)
		return;
	locks_release_all(c);
	ctx_unlink(c->u ? &c->u->ctxs : &c->bot->w->background, c);
	free(c);
}

int ctx_in_fiber(const struct tgrun_ctx *ctx)
{
	return ctx != NULL && ctx->task != NULL && sched_current() == ctx->task;
}

int tgrun_cancelled(struct tgrun_ctx *ctx)
{
	return (ctx->task != NULL && task_cancelled(ctx->task)) ||
	    (ctx->u != NULL && ctx->u->cancelled);
}

void runtime_cancel_update(struct worker *w, struct wupdate *u)
{
	u->cancelled = 1;
	for (struct tgrun_ctx *c = u->ctxs; c; c = c->next)
		if (c->task != NULL)
			sched_cancel(c->task);
}

void runtime_cancel_background(struct worker *w)
{
	for (struct tgrun_ctx *c = w->background; c; c = c->next)
		if (c->task != NULL)
			sched_cancel(c->task);
}

/* Park the calling fiber; -1 with errno for anything but a wake-up. */
static int park(struct tgrun_ctx *ctx, const char *what, task_abort_fn abort,
    void *obj, int64_t timeout_ms)
{
	int st;

	if (!ctx_in_fiber(ctx)) {
		errno = EPERM;
		return -1;
	}
	if (tgrun_cancelled(ctx)) {
		if (abort)
			abort(ctx->task, obj);
		errno = ECANCELED;
		return -1;
	}
	st = sched_park(what, abort, obj, timeout_ms);
	if (st != 0) {
		errno = st;
		return -1;
	}
	return 0;
}

int tgrun_sleep(struct tgrun_ctx *ctx, double seconds)
{
	if (park(ctx, "sleep", NULL, NULL, secs_to_ms(seconds > 0 ? seconds : 0)) == 0 ||
	    errno == ETIMEDOUT)
		return 0;
	return -1;
}

/* ---- spawn, join, all -------------------------------------------------------- */

static void fiber_release(struct tgrun_fiber *f)
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
	fiber_release(f);
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
		f->next = ctx->u->handles;
		ctx->u->handles = f;
		if (!f->detached)
			ctx->u->live_children++;
	}
	return f;
}

void runtime_release_handles(struct wupdate *u)
{
	struct tgrun_fiber *f, *next;

	for (f = u->handles; f; f = next) {
		next = f->next;
		fiber_release(f);
	}
	u->handles = NULL;
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
		if (park(ctx, "join", join_abort, f, secs_to_ms(timeout)) != 0) {
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
		if (park(ctx, "all", all_abort, &g, secs_to_ms(timeout)) != 0) {
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

/* ---- waiters ------------------------------------------------------------------- */

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
	st = sched_park("waiter", waiter_abort, w, secs_to_ms(timeout));
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

/* ---- file descriptors ---------------------------------------------------------- */

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
	rc = park(ctx, "fd", fd_abort, &fw, secs_to_ms(timeout));
	event_free(fw.ev);
	if (rc == 0)
		return fw.ready;
	return errno == ETIMEDOUT ? 0 : -1;
}

/* ---- locks --------------------------------------------------------------------- */

struct lockwait {
	struct lockwait *next;
	struct task *t;
	int granted;
};

struct lock {
	struct lock *next;	/* in the worker's list */
	char *key;
	struct tgrun_ctx *owner;
	struct lockwait *head, *tail;
};

struct lockheld {
	struct lockheld *next;
	struct lock *lock;
};

struct lockmap {
	struct lock *all;
};

static struct lock *lock_find(struct worker *w, const char *key, int create)
{
	struct lock *l;

	if (w->locks == NULL) {
		if (!create || (w->locks = calloc(1, sizeof(*w->locks))) == NULL)
			return NULL;
	}
	for (l = w->locks->all; l; l = l->next)
		if (strcmp(l->key, key) == 0)
			return l;
	if (!create || (l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	if ((l->key = strdup(key)) == NULL) {
		free(l);
		return NULL;
	}
	l->next = w->locks->all;
	w->locks->all = l;
	return l;
}

static void lock_drop_if_idle(struct worker *w, struct lock *l)
{
	struct lock **pp;

	if (l->owner != NULL || l->head != NULL)
		return;
	for (pp = &w->locks->all; *pp; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	}
	free(l->key);
	free(l);
}

static void lockwait_abort(struct task *t, void *obj)
{
	struct lock *l = obj;
	struct lockwait **pp;

	for (pp = &l->head; *pp; pp = &(*pp)->next) {
		if ((*pp)->t == t) {
			*pp = (*pp)->next;
			break;
		}
	}
	l->tail = NULL;
	for (struct lockwait *x = l->head; x; x = x->next)
		l->tail = x;
}

static int hold(struct tgrun_ctx *ctx, struct lock *l)
{
	struct lockheld *h = malloc(sizeof(*h));

	if (h == NULL)
		return -1;
	l->owner = ctx;
	h->lock = l;
	h->next = ctx->locks;
	ctx->locks = h;
	return 0;
}

int tgrun_lock(struct tgrun_ctx *ctx, const char *key, double timeout)
{
	struct worker *w;
	struct lock *l;
	struct lockwait me = { NULL, NULL, 0 };

	if (ctx == NULL || key == NULL) {
		errno = EINVAL;
		return -1;
	}
	w = ctx->bot->w;
	l = lock_find(w, key, 1);
	if (l == NULL)
		return -1;
	if (l->owner == NULL)
		return hold(ctx, l);
	if (l->owner == ctx) {
		errno = EDEADLK;
		return -1;
	}
	/* Only a fiber can wait: never queue a waiter that cannot park. */
	if (!ctx_in_fiber(ctx)) {
		errno = EPERM;
		return -1;
	}
	me.t = ctx->task;
	if (l->tail)
		l->tail->next = &me;
	else
		l->head = &me;
	l->tail = &me;
	if (park(ctx, "lock", lockwait_abort, l, secs_to_ms(timeout)) != 0) {
		lock_drop_if_idle(w, l);
		return -1;
	}
	/* The unlocker handed the lock over and removed us from the queue. */
	return 0;
}

static void lock_handover(struct worker *w, struct lock *l)
{
	struct lockwait *next = l->head;

	l->owner = NULL;
	if (next == NULL) {
		lock_drop_if_idle(w, l);
		return;
	}
	l->head = next->next;
	if (l->head == NULL)
		l->tail = NULL;
	next->granted = 1;
	sched_wake(next->t);
	/* Ownership moves now, so no other fiber can take it in between. */
	{
		struct tgrun_ctx *owner = task_data(next->t);

		if (owner == NULL || hold(owner, l) != 0)
			fatalx("lock hand-over without a context");
	}
}

int tgrun_unlock(struct tgrun_ctx *ctx, const char *key)
{
	struct worker *w = ctx->bot->w;
	struct lock *l = key ? lock_find(w, key, 0) : NULL;
	struct lockheld **pp;

	if (l == NULL || l->owner != ctx) {
		errno = EPERM;
		return -1;
	}
	for (pp = &ctx->locks; *pp; pp = &(*pp)->next) {
		if ((*pp)->lock == l) {
			struct lockheld *h = *pp;

			*pp = h->next;
			free(h);
			break;
		}
	}
	lock_handover(w, l);
	return 0;
}

void locks_release_all(struct tgrun_ctx *ctx)
{
	struct worker *w = ctx->bot->w;
	struct lockheld *h;

	while ((h = ctx->locks) != NULL) {
		ctx->locks = h->next;
		log_warn("a fiber ended holding lock \"%s\"; released", h->lock->key);
		lock_handover(w, h->lock);
		free(h);
	}
}

void locks_free(struct worker *w)
{
	struct lock *l, *next;

	if (w->locks == NULL)
		return;
	for (l = w->locks->all; l; l = next) {
		next = l->next;
		free(l->key);
		free(l);
	}
	free(w->locks);
	w->locks = NULL;
}

/* ---- periodic tasks ------------------------------------------------------------ */

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
	e->interval_ms = secs_to_ms(interval);
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
