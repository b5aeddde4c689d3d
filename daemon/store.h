/* The store of fetched updates until they are done: the interface the master talks to, whatever keeps them. */
#ifndef TGRUN_STORE_H
#define TGRUN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The master's rules, which every store keeps:
 * - a fetched batch is stored (durably, as [journal] sync says) before the
 *   next getUpdates confirms it to Telegram: store_add_batch() comes first;
 * - store_replay() gives the unfinished updates in update_id order, so the
 *   sequencer rebuilds every chat's queue as it was;
 * - completions may be batched (store_done() queues, store_flush() writes):
 *   losing the queue only means those updates run again;
 * - a write that fails leaves the store usable; store_disk_full() says
 *   whether polling should pause until space is back.
 * The SQLite journal (journal.h) is one store, and the default.
 */
struct store;

/* update_id for "every dead letter" in store_dead_retry/_drop. */
#define STORE_ALL (-1)

/* One fetched update: its id and raw JSON, not NUL-terminated necessarily. */
struct store_rec {
	int64_t update_id;
	const char *body;
	size_t len;
};

/* A dead letter as listed; the pointers are valid during the callback only. */
struct store_dead {
	int64_t update_id;
	int attempts;
	const char *error;	/* "" if none was recorded */
	int64_t died_at;	/* unix seconds */
	const char *body;	/* raw JSON, NUL-terminated, `len` bytes */
	size_t len;
};

/* Callbacks return 0 to go on; any other value stops the walk and is returned. */
typedef int (*store_update_cb)(void *arg, int64_t update_id, const char *body,
    size_t len, int attempt);
typedef int (*store_dead_cb)(void *arg, const struct store_dead *d);

/* An implementation; each function is documented at its store_ wrapper below. */
struct store_ops {
	int (*add_batch)(struct store *s, const struct store_rec *recs, size_t n,
	    int64_t next_offset);
	int (*offset)(struct store *s, int64_t *out);
	int (*done)(struct store *s, int64_t update_id);
	size_t (*done_pending)(const struct store *s);
	int (*flush)(struct store *s);
	int (*set_attempt)(struct store *s, int64_t update_id, int attempt);
	int (*replay)(struct store *s, store_update_cb cb, void *arg);
	int (*dead_letter)(struct store *s, int64_t update_id, int attempts,
	    const char *error);
	int (*dead_list)(struct store *s, store_dead_cb cb, void *arg);
	int (*dead_get)(struct store *s, int64_t update_id, store_dead_cb cb, void *arg);
	int64_t (*dead_retry)(struct store *s, int64_t update_id);
	int64_t (*dead_drop)(struct store *s, int64_t update_id);
	int64_t (*dead_count)(struct store *s);
	const char *(*errmsg)(const struct store *s);
	bool (*disk_full)(const struct store *s);
	int64_t (*size_bytes)(const struct store *s);
	void (*close)(struct store *s);
};

/* The first member of every implementation's own struct. */
struct store {
	const struct store_ops *ops;
};

/*
 * Store a fetched batch and the offset that will confirm it, atomically.
 * An update already stored is kept as is (attempt included). `n` may be 0
 * (offset only). The number of updates that were new, or -1 (nothing stored).
 */
static inline __attribute__((warn_unused_result)) int
store_add_batch(struct store *s, const struct store_rec *recs, size_t n, int64_t next_offset)
{
	return s->ops->add_batch(s, recs, n, next_offset);
}

/* The stored offset in *out (0 if none was ever stored). 0 or -1. */
static inline __attribute__((warn_unused_result)) int
store_offset(struct store *s, int64_t *out)
{
	return s->ops->offset(s, out);
}

/* Mark an update done (queued until store_flush). -1 only when out of memory. */
static inline __attribute__((warn_unused_result)) int
store_done(struct store *s, int64_t update_id)
{
	return s->ops->done(s, update_id);
}

/* Completions queued and not yet flushed. */
static inline size_t
store_done_pending(const struct store *s)
{
	return s->ops->done_pending(s);
}

/* Write the queued completions; on failure the queue is kept. 0 or -1. */
static inline __attribute__((warn_unused_result)) int
store_flush(struct store *s)
{
	return s->ops->flush(s);
}

/* Persist an update's attempt counter; an id not stored is ignored. 0 or -1. */
static inline __attribute__((warn_unused_result)) int
store_set_attempt(struct store *s, int64_t update_id, int attempt)
{
	return s->ops->set_attempt(s, update_id, attempt);
}

/* Every unfinished update in update_id order: 0, the callback's stop value, or -1. */
static inline __attribute__((warn_unused_result)) int
store_replay(struct store *s, store_update_cb cb, void *arg)
{
	return s->ops->replay(s, cb, arg);
}

/* Move an update to the dead letters with its attempts and last error. 0 or -1. */
static inline __attribute__((warn_unused_result)) int
store_dead_letter(struct store *s, int64_t update_id, int attempts, const char *error)
{
	return s->ops->dead_letter(s, update_id, attempts, error);
}

/* Every dead letter in update_id order; returns like store_replay(). */
static inline __attribute__((warn_unused_result)) int
store_dead_list(struct store *s, store_dead_cb cb, void *arg)
{
	return s->ops->dead_list(s, cb, arg);
}

/* One dead letter: 1 (cb called), 0 if absent, or -1. */
static inline __attribute__((warn_unused_result)) int
store_dead_get(struct store *s, int64_t update_id, store_dead_cb cb, void *arg)
{
	return s->ops->dead_get(s, update_id, cb, arg);
}

/*
 * Dead letters back among the unfinished updates with attempt 0 (STORE_ALL:
 * all); the caller takes them with store_replay(). How many, or -1.
 */
static inline __attribute__((warn_unused_result)) int64_t
store_dead_retry(struct store *s, int64_t update_id)
{
	return s->ops->dead_retry(s, update_id);
}

/* Delete dead letters (STORE_ALL: all). How many, or -1. */
static inline __attribute__((warn_unused_result)) int64_t
store_dead_drop(struct store *s, int64_t update_id)
{
	return s->ops->dead_drop(s, update_id);
}

/* Number of dead letters, or -1. */
static inline int64_t
store_dead_count(struct store *s)
{
	return s->ops->dead_count(s);
}

/* What the last failed call found. */
static inline const char *
store_errmsg(const struct store *s)
{
	return s->ops->errmsg(s);
}

/* The last call failed for lack of space: pause polling and try again later. */
static inline bool
store_disk_full(const struct store *s)
{
	return s->ops->disk_full(s);
}

/* Bytes the store takes, for metrics; -1 if unknown. */
static inline int64_t
store_size_bytes(const struct store *s)
{
	return s->ops->size_bytes(s);
}

/* Flush what can be flushed and close; NULL is allowed. */
static inline void
store_close(struct store *s)
{
	if (s != NULL)
		s->ops->close(s);
}

#endif
