/* getUpdates long polling on curl multi, with the Bot API's error policy. */
#ifndef TGRUN_POLLER_H
#define TGRUN_POLLER_H

#include <stdint.h>
#include <jansson.h>

struct event_base;
struct evcurl;
struct config;
struct poller;

/* One update of a batch: its raw JSON text, valid during on_batch only. */
struct poller_item {
	const char *json;
	size_t len;
	/*
	 * 0, or why a worker's JSON decoder would refuse these well-formed
	 * bytes (JSCAN_ENUL, JSCAN_EINT, JSCAN_EREAL from common/jscan.h).
	 */
	int err;
};

struct poller_cbs {
	/*
	 * A batch arrived: the updates' raw JSON, split out of the answer
	 * without building a DOM (the master only needs ids and keys).
	 */
	void (*on_batch)(void *arg, const struct poller_item *items, size_t n);
	/* The token was rejected (401/404): the daemon must stop with status 3. */
	void (*on_rejected)(void *arg, int code, const char *desc);
	/*
	 * Update `id` is too large to receive even alone (over the 64 MiB an
	 * answer may have): the offset must move past it, or polling stops here.
	 */
	void (*on_skip)(void *arg, int64_t id);
	/* A confirm-only request (poller_confirm) ended, ok or not. */
	void (*on_confirmed)(void *arg, int ok);
	void *arg;
	/*
	 * 409 Conflict: another getUpdates consumer is active. Told before the
	 * retry waits its backoff; NULL if nobody needs to know.
	 */
	void (*on_conflict)(void *arg);
	/*
	 * A wait (error backoff, retry_after, [poll] coalesce) is over: call
	 * poller_poll() if polling is still wanted; the owner's state may have
	 * changed meanwhile (a cluster node lost its lease, polling paused).
	 * NULL: the poller asks again by itself.
	 */
	void (*on_ready)(void *arg);
	/*
	 * Asked once a request's connection is ready, just before it is
	 * written: 0 drops it unsent and the poller goes idle (a confirm ends
	 * with on_confirmed(0)). A cluster node stopped (paused) between
	 * deciding to poll and sending must not poll after its lease ran out.
	 * NULL: always sent.
	 */
	int (*may_send)(void *arg);
};

struct poller *poller_new(struct event_base *base, struct evcurl *ec,
    const struct config *cfg, const char *token, const struct poller_cbs *cbs);
void poller_free(struct poller *p);

/*
 * Ask for updates from `offset`, at most `limit`. Does nothing when a
 * request or a backoff wait is already under way. Errors are retried
 * inside the poller (backoff, retry_after) until poller_stop().
 */
void poller_poll(struct poller *p, int64_t offset, int limit);
/* 1 while a request or a retry wait is under way. */
int poller_busy(const struct poller *p);
/* Abort any request and wait; no callback follows. */
void poller_stop(struct poller *p);
/*
 * One short getUpdates(offset, limit 1, timeout 0) whose only purpose is to
 * confirm everything below `offset` to the Bot API. Calls on_confirmed.
 */
void poller_confirm(struct poller *p, int64_t offset);

/* A reload: use `cfg` (timeout, limit, allowed_updates...) from the next request on. */
void poller_set_config(struct poller *p, const struct config *cfg);

#endif
