/* Per-worker named locks for fibers (tgrun_lock): a map of keys, each with its owner and a FIFO of waiters. */
#include "tgrun.h"
#include "worker.h"
#include "log.h"
#include "sched.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
	if (ctx_park(ctx, "lock", lockwait_abort, l, ctx_timeout_ms(timeout)) != 0) {
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
