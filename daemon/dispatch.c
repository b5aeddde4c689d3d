/* Dispatch: which worker runs which update (least loaded first, retries alone, timeouts). */
#include "dispatch.h"
#include "clock.h"
#include "log.h"

#include <stdlib.h>

struct dsp_peer {
	void *h;
	int open;		/* takes new updates */
	int inflight;
	/*
	 * A retried update runs alone in its peer: `isolated` while it does.
	 * When no peer is idle for a retry, one is `reserved`: it gets nothing
	 * new until it is idle, so retries cannot starve under load.
	 */
	int isolated, reserved;
	TAILQ_HEAD(, dsp_entry) running;
	TAILQ_ENTRY(dsp_peer) link;
};

struct dispatch {
	struct dispatch_cbs cbs;
	struct dispatch_limits lim;
	TAILQ_HEAD(, dsp_peer) peers;
	TAILQ_HEAD(, dsp_entry) retries;
	int inflight, queued;
	uint64_t timeouts;
};

struct dispatch *dispatch_new(const struct dispatch_cbs *cbs,
    const struct dispatch_limits *lim)
{
	struct dispatch *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return NULL;
	d->cbs = *cbs;
	d->lim = *lim;
	TAILQ_INIT(&d->peers);
	TAILQ_INIT(&d->retries);
	return d;
}

void dispatch_free(struct dispatch *d)
{
	struct dsp_peer *p;

	if (d == NULL)
		return;
	while ((p = TAILQ_FIRST(&d->peers)) != NULL)
		dispatch_peer_remove(d, p, NULL, NULL);
	free(d);
}

void dispatch_set_limits(struct dispatch *d, const struct dispatch_limits *lim)
{
	d->lim = *lim;
}

struct dsp_peer *dispatch_peer_add(struct dispatch *d, void *h)
{
	struct dsp_peer *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->h = h;
	p->open = 1;
	TAILQ_INIT(&p->running);
	TAILQ_INSERT_HEAD(&d->peers, p, link);
	return p;
}

void dispatch_peer_close(struct dispatch *d, struct dsp_peer *p)
{
	p->open = 0;
	p->reserved = 0;
}

int dispatch_peer_inflight(const struct dsp_peer *p)
{
	return p->inflight;
}

static void track(struct dispatch *d, struct dsp_peer *p, struct dsp_entry *e)
{
	e->peer = p;
	e->dispatched_ms = clock_ms();
	e->cancel_sent_ms = 0;
	TAILQ_INSERT_TAIL(&p->running, e, link);
	p->inflight++;
	d->inflight++;
}

static void untrack(struct dispatch *d, struct dsp_entry *e)
{
	struct dsp_peer *p = e->peer;

	TAILQ_REMOVE(&p->running, e, link);
	e->peer = NULL;
	e->cancel_sent_ms = 0;
	p->inflight--;
	d->inflight--;
	if (p->inflight == 0)
		p->isolated = 0;
}

void dispatch_peer_remove(struct dispatch *d, struct dsp_peer *p,
    void (*lost)(void *arg, struct dsp_entry *e, int timed_out), void *arg)
{
	struct dsp_entry *e;

	/* Out of the list first: `lost` may retry, and p must not take it. */
	TAILQ_REMOVE(&d->peers, p, link);
	while ((e = TAILQ_FIRST(&p->running)) != NULL) {
		int timed_out = e->cancel_sent_ms != 0;

		untrack(d, e);
		if (lost != NULL)
			lost(arg, e, timed_out);
	}
	free(p);
}

static int usable(const struct dsp_peer *p)
{
	return p->open && !p->isolated && !p->reserved;
}

static struct dsp_peer *least_loaded(struct dispatch *d)
{
	struct dsp_peer *best = NULL, *p;

	TAILQ_FOREACH(p, &d->peers, link) {
		if (!usable(p) || p->inflight >= d->lim.per_peer)
			continue;
		if (best == NULL || p->inflight < best->inflight)
			best = p;
	}
	return best;
}

static int send_to(struct dispatch *d, struct dsp_peer *p, struct dsp_entry *e)
{
	if (d->cbs.send(d->cbs.arg, p->h, e) != 0)
		return -1;
	track(d, p, e);
	return 0;
}

static void unqueue(struct dispatch *d, struct dsp_entry *e)
{
	TAILQ_REMOVE(&d->retries, e, link);
	e->queued = 0;
	d->queued--;
}

void dispatch_retry(struct dispatch *d, struct dsp_entry *e, int64_t not_before_ms,
    int alone)
{
	e->not_before_ms = not_before_ms;
	e->alone = alone;
	e->queued = 1;
	TAILQ_INSERT_TAIL(&d->retries, e, link);
	d->queued++;
}

int dispatch_retry_due(const struct dispatch *d, int64_t now)
{
	const struct dsp_entry *e;

	TAILQ_FOREACH(e, &d->retries, link)
		if (e->not_before_ms <= now)
			return 1;
	return 0;
}

void dispatch_forget(struct dispatch *d, struct dsp_entry *e)
{
	if (e->queued) {
		unqueue(d, e);
	} else if (e->peer != NULL) {
		untrack(d, e);
	}
}

static struct dsp_peer *idle_peer(struct dispatch *d)
{
	struct dsp_peer *p;

	TAILQ_FOREACH(p, &d->peers, link)
		if (p->open && !p->isolated && p->inflight == 0)
			return p;
	return NULL;
}

/* No peer is idle for a retry that runs alone: keep one from new work. */
static void reserve_one(struct dispatch *d)
{
	struct dsp_peer *p;

	TAILQ_FOREACH(p, &d->peers, link)
		if (p->reserved)
			return;
	if ((p = least_loaded(d)) != NULL)
		p->reserved = 1;
}

static void run_retries(struct dispatch *d)
{
	struct dsp_entry *e, *next;
	int64_t now = clock_ms();
	int alone_waits = 0;

	for (e = TAILQ_FIRST(&d->retries); e != NULL && d->inflight < d->lim.total;
	    e = next) {
		struct dsp_peer *p;

		next = TAILQ_NEXT(e, link);
		if (e->not_before_ms > now || (e->alone && alone_waits))
			continue;
		if (e->alone && (p = idle_peer(d)) == NULL) {
			reserve_one(d);
			alone_waits = 1;
			continue;
		}
		if (!e->alone && (p = least_loaded(d)) == NULL)
			continue;
		p->reserved = 0;
		unqueue(d, e);
		if (send_to(d, p, e) != 0) {
			/* Still first in line; try again at the next event. */
			e->queued = 1;
			TAILQ_INSERT_HEAD(&d->retries, e, link);
			d->queued++;
			return;
		}
		if (e->alone)
			p->isolated = 1;
	}
}

void dispatch_run(struct dispatch *d)
{
	struct dsp_peer *p;
	struct dsp_entry *e;

	run_retries(d);
	while (d->inflight < d->lim.total && (p = least_loaded(d)) != NULL) {
		if ((e = d->cbs.next(d->cbs.arg)) == NULL)
			return;
		if (send_to(d, p, e) != 0) {
			dispatch_retry(d, e, 0, 1);
			return;
		}
	}
}

int dispatch_done(struct dispatch *d, struct dsp_peer *p, struct dsp_entry *e)
{
	int timed_out;

	if (e->peer != p || p == NULL)
		return -1;
	timed_out = e->cancel_sent_ms != 0;
	untrack(d, e);
	return timed_out;
}

void dispatch_tick(struct dispatch *d, int64_t now)
{
	struct dsp_peer *p;
	struct dsp_entry *e;

	TAILQ_FOREACH(p, &d->peers, link) {
		TAILQ_FOREACH(e, &p->running, link) {
			if (e->cancel_sent_ms == 0 &&
			    now - e->dispatched_ms >= d->lim.timeout_ms) {
				log_warn("update %lld: running for %lld ms, over update_timeout; "
				    "cancelling it", (long long)e->id,
				    (long long)(now - e->dispatched_ms));
				d->timeouts++;
				e->cancel_sent_ms = now;
				if (d->cbs.cancel(d->cbs.arg, p->h, e->id) != 0) {
					d->cbs.kill(d->cbs.arg, p->h, e->id);
					break;
				}
			} else if (e->cancel_sent_ms != 0 &&
			    now - e->cancel_sent_ms >= d->lim.grace_ms) {
				d->cbs.kill(d->cbs.arg, p->h, e->id);
				break;
			}
		}
	}
}

void dispatch_stalled(struct dispatch *d, int64_t ms)
{
	struct dsp_peer *p;
	struct dsp_entry *e;

	TAILQ_FOREACH(p, &d->peers, link) {
		TAILQ_FOREACH(e, &p->running, link) {
			e->dispatched_ms += ms;
			if (e->cancel_sent_ms != 0)
				e->cancel_sent_ms += ms;
		}
	}
}

void dispatch_cancel_all(struct dispatch *d)
{
	struct dsp_peer *p;
	struct dsp_entry *e;

	TAILQ_FOREACH(p, &d->peers, link)
		TAILQ_FOREACH(e, &p->running, link)
			(void)d->cbs.cancel(d->cbs.arg, p->h, e->id);
}

struct dispatch_counts dispatch_counts(const struct dispatch *d)
{
	return (struct dispatch_counts){ d->inflight, d->queued, d->timeouts };
}
