/* Per-worker named locks for fibers (tgrun_lock): a hash map of held keys, a FIFO of waiters each. */
#include "tgrun.h"
#include "worker.h"
#include "log.h"
#include "sched.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#define MAP_MIN_BUCKETS 16

/* A fiber waiting for a lock; on that fiber's stack while it waits. */
struct lockwait {
	TAILQ_ENTRY(lockwait) link;
	struct lock *lock;
	struct task *t;
};

/*
 * A lock exists exactly while it has an owner: releasing it hands it to the
 * first waiter at once, or drops it from the map when nobody waits. So a
 * lock is never free with waiters, and the map holds only locks in use.
 */
struct lock {
	LIST_ENTRY(lock) chain;			/* in its map bucket */
	LIST_ENTRY(lock) held;			/* in owner->locks */
	struct tgrun_ctx *owner;
	TAILQ_HEAD(, lockwait) waiters;		/* in arrival order */
	uint64_t hash;
	char key[];
};

LIST_HEAD(lock_chain, lock);

/* Chained hash map; buckets double as locks outnumber them and halve as they go. */
struct lockmap {
	struct lock_chain *buckets;
	size_t nbuckets;			/* a power of two */
	size_t count;
};

/* FNV-1a, 64-bit. */
static uint64_t key_hash(const char *key)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static struct lock_chain *chain_of(const struct lockmap *m, uint64_t h)
{
	return &m->buckets[h & (m->nbuckets - 1)];
}

/* Rehash into n buckets; on failure the map stays as it is (only slower). */
static void map_resize(struct lockmap *m, size_t n)
{
	struct lock_chain *old = m->buckets;
	size_t oldn = m->nbuckets;
	struct lock *l;

	m->buckets = calloc(n, sizeof(*m->buckets));
	if (m->buckets == NULL) {
		m->buckets = old;
		return;
	}
	m->nbuckets = n;
	for (size_t i = 0; i < oldn; i++) {
		while ((l = LIST_FIRST(&old[i])) != NULL) {
			LIST_REMOVE(l, chain);
			LIST_INSERT_HEAD(chain_of(m, l->hash), l, chain);
		}
	}
	free(old);
}

static struct lock *lock_find(const struct worker *w, const char *key)
{
	const struct lockmap *m = w->locks;
	uint64_t h;
	struct lock *l;

	if (m == NULL)
		return NULL;
	h = key_hash(key);
	LIST_FOREACH(l, chain_of(m, h), chain)
		if (l->hash == h && strcmp(l->key, key) == 0)
			return l;
	return NULL;
}

/* A new lock on `key` held by `owner`; NULL with errno when out of memory. */
static struct lock *lock_new(struct worker *w, const char *key, struct tgrun_ctx *owner)
{
	struct lockmap *m = w->locks;
	size_t len = strlen(key);
	struct lock *l;

	if (m == NULL) {
		m = calloc(1, sizeof(*m));
		if (m == NULL || (m->buckets = calloc(MAP_MIN_BUCKETS,
		    sizeof(*m->buckets))) == NULL) {
			free(m);
			return NULL;
		}
		m->nbuckets = MAP_MIN_BUCKETS;
		w->locks = m;
	}
	l = malloc(sizeof(*l) + len + 1);
	if (l == NULL)
		return NULL;
	memcpy(l->key, key, len + 1);
	l->hash = key_hash(key);
	TAILQ_INIT(&l->waiters);
	l->owner = owner;
	LIST_INSERT_HEAD(&owner->locks, l, held);
	LIST_INSERT_HEAD(chain_of(m, l->hash), l, chain);
	if (++m->count > m->nbuckets)
		map_resize(m, m->nbuckets * 2);
	return l;
}

/* Hand the lock to its first waiter, or drop it when nobody waits. */
static void lock_release(struct worker *w, struct lock *l)
{
	struct lockmap *m = w->locks;
	struct lockwait *next = TAILQ_FIRST(&l->waiters);
	struct tgrun_ctx *owner;

	LIST_REMOVE(l, held);
	if (next == NULL) {
		LIST_REMOVE(l, chain);
		free(l);
		if (--m->count < m->nbuckets / 8 && m->nbuckets > MAP_MIN_BUCKETS)
			map_resize(m, m->nbuckets / 2);
		return;
	}
	/* Ownership moves now, so no other fiber can take it in between. */
	TAILQ_REMOVE(&l->waiters, next, link);
	owner = task_data(next->t);
	if (owner == NULL)
		fatalx("%s: lock hand-over to a task without a context", __func__);
	l->owner = owner;
	LIST_INSERT_HEAD(&owner->locks, l, held);
	sched_wake(next->t);
}

/* The wait ended without the lock (timeout, cancel): leave the queue. */
static void lockwait_abort(struct task *t, void *obj)
{
	struct lockwait *me = obj;

	TAILQ_REMOVE(&me->lock->waiters, me, link);
}

int tgrun_lock(struct tgrun_ctx *ctx, const char *key, double timeout)
{
	struct lockwait me;
	struct lock *l;

	if (ctx == NULL || key == NULL) {
		errno = EINVAL;
		return -1;
	}
	l = lock_find(ctx->bot->w, key);
	if (l == NULL)
		return lock_new(ctx->bot->w, key, ctx) != NULL ? 0 : -1;
	if (l->owner == ctx) {
		errno = EDEADLK;
		return -1;
	}
	/* Only a fiber can wait: never queue a waiter that cannot park. */
	if (!ctx_in_fiber(ctx)) {
		errno = EPERM;
		return -1;
	}
	me.lock = l;
	me.t = ctx->task;
	TAILQ_INSERT_TAIL(&l->waiters, &me, link);
	/* Woken without error only by lock_release(), which made us the owner. */
	return ctx_park(ctx, "lock", lockwait_abort, &me, ctx_timeout_ms(timeout));
}

int tgrun_unlock(struct tgrun_ctx *ctx, const char *key)
{
	struct lock *l = ctx != NULL && key != NULL ? lock_find(ctx->bot->w, key) : NULL;

	if (l == NULL || l->owner != ctx) {
		errno = EPERM;
		return -1;
	}
	lock_release(ctx->bot->w, l);
	return 0;
}

void locks_release_all(struct tgrun_ctx *ctx)
{
	struct lock *l;

	while ((l = LIST_FIRST(&ctx->locks)) != NULL) {
		log_warn("a fiber ended holding lock \"%s\"; released", l->key);
		lock_release(ctx->bot->w, l);
	}
}

void locks_free(struct worker *w)
{
	struct lockmap *m = w->locks;
	struct lock *l;

	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nbuckets; i++) {
		while ((l = LIST_FIRST(&m->buckets[i])) != NULL) {
			LIST_REMOVE(l, chain);
			LIST_REMOVE(l, held);
			free(l);
		}
	}
	free(m->buckets);
	free(m);
	w->locks = NULL;
}
