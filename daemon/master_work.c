/* The master's side of the workers: what the dispatcher sends, what comes back, retries and dead letters. */
#include "master.h"
#include "master_cluster.h"
#include "clock.h"
#include "control.h"
#include "dispatch.h"
#include "frame.h"
#include "log.h"
#include "metrics.h"
#include "store.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include <event2/event.h>

/* ---- dispatch -------------------------------------------------------------- */

static struct upd *upd_of(struct dsp_entry *e)
{
	return (struct upd *)((char *)e - offsetof(struct upd, de));
}

static struct dsp_entry *next_ready(void *arg)
{
	struct master *m = arg;
	struct upd *u;

	if (m->mc != NULL)
		return master_cluster_next(m);
	/* What no worker can run goes to the dead letters; its keys go on. */
	while ((u = pending_next_ready(m->pend)) != NULL && u->refused != NULL)
		master_dead_letter(m, u, 0, u->refused);
	return u ? &u->de : NULL;
}

static int send_update(void *arg, void *h, struct dsp_entry *e)
{
	struct master *m = arg;
	struct upd *u = upd_of(e);

	/* `u` may be the successor of an update that just finished. */
	master_store_record(m);
	if (workers_send_update(h, u->id, u->attempt, u->json, u->len) != 0)
		return -1;
	if (e->dispatched_ms == 0)
		metrics_observe_dispatch(m->metrics, clock_ms() - u->fetched_ms);
	return 0;
}

static int send_cancel(void *arg, void *h, int64_t id)
{
	return workers_send_cancel(h, id);
}

static void kill_worker(void *arg, void *h, int64_t id)
{
	workers_kill_one(h, id);
}

static void dispatch_limits_of(const struct config *c, struct dispatch_limits *l)
{
	*l = (struct dispatch_limits){
		.per_peer = c->worker_concurrency,
		.total = c->concurrency,
		.timeout_ms = c->update_timeout_ms,
		.grace_ms = c->kill_grace_ms,
	};
}

static void pending_rules_of(const struct config *c, struct pending_rules *r)
{
	*r = (struct pending_rules){ .sequentialize = c->sequentialize,
	    .bypass = c->bypass };
}

void master_apply_config(struct master *m)
{
	struct pending_rules r;
	struct dispatch_limits l;

	pending_rules_of(m->cfg, &r);
	pending_set_rules(m->pend, &r);
	dispatch_limits_of(m->cfg, &l);
	dispatch_set_limits(m->dsp, &l);
	if (m->mc != NULL)
		master_cluster_apply_config(m);
}

struct dispatch *master_dispatch_new(struct master *m)
{
	struct dispatch_cbs cbs = { m, next_ready, send_update, send_cancel, kill_worker };
	struct dispatch_limits l;

	dispatch_limits_of(m->cfg, &l);
	return dispatch_new(&cbs, &l);
}

void master_dispatch(struct master *m)
{
	if (m->mc != NULL) {
		master_cluster_dispatch(m);
		return;
	}
	/* With the journal, a stop leaves pending updates for the next start. */
	if (m->stopping && m->store != NULL)
		return;
	dispatch_run(m->dsp);
}

/* ---- results from workers ---------------------------------------------------- */

void master_add_peer(void *arg, struct wslot *w)
{
	struct master *m = arg;
	struct dsp_peer *p = dispatch_peer_add(m->dsp, w);

	if (p == NULL)
		fatalx("out of memory");
	workers_set_udata(w, p);
}

static void master_worker_ready(void *arg, struct wslot *w)
{
	struct master *m = arg;

	master_add_peer(m, w);
	master_dispatch(m);
	master_maybe_poll(m);
}

/*
 * `u` goes to the dead letters with `why` (or, without a journal, is
 * dropped with a log line). `ran`: it ran and failed every attempt.
 */
void master_dead_letter(struct master *m, struct upd *u, int ran, const char *why)
{
	char attempts[48];

	snprintf(attempts, sizeof(attempts), ran ? "after %d attempts" :
	    "without running", u->attempt);
	m->n_dead++;
	if (m->store != NULL && u->journaled &&
	    store_dead_letter(m->store, u->id, u->attempt, why) == 0) {
		log_err("update %lld (%s): dead-lettered %s: %s (tgrunctl dead-letters "
		    "show %lld)", (long long)u->id, keys_type_name(u->type), attempts,
		    why, (long long)u->id);
		master_finish(m, u, 0);
		return;
	}
	log_err("update %lld (%s): dropped %s: %s", (long long)u->id,
	    keys_type_name(u->type), attempts, why);
	master_finish(m, u, 1);
}

static void master_update_done(void *arg, struct wslot *w, int64_t id,
    int status, uint32_t ms)
{
	struct master *m = arg;
	struct upd *u;
	int timed_out;

	if (m->mc != NULL) {
		master_cluster_update_done(m, w, id, status, ms);
		return;
	}
	u = pending_get(m->pend, id);
	timed_out = u ? dispatch_done(m->dsp, workers_udata(w), &u->de) : -1;

	if (timed_out < 0) {
		log_warn("worker %d: DONE for update %lld it was not running; ignored",
		    workers_slot(w), (long long)id);
		return;
	}
	metrics_observe_handler(m->metrics, ms);
	if (status == FRAME_ST_OK) {
		m->n_done++;
	} else {
		m->n_failed++;
		if (timed_out)
			log_warn("update %lld (%s): cancelled after update_timeout; its keys "
			    "are released now", (long long)id, keys_type_name(u->type));
		else if (status == FRAME_ST_CANCELLED && m->stopping)
			log_info("update %lld: cancelled by the stop", (long long)id);
		else
			log_info("update %lld (%s) failed in worker %d after %u ms",
			    (long long)id, keys_type_name(u->type), workers_slot(w), ms);
	}
	if (status == FRAME_ST_CANCELLED && m->stopping && !timed_out && m->store) {
		/* Cancelled by the stop: it stays journaled for the next start. */
	} else {
		master_finish(m, u, 1);
	}
	/* Every DONE frame this turn costs one done-log write and one dispatch. */
	event_active(m->turn_ev, EV_TIMEOUT, 0);
	if (m->stopping && master_inflight(m) == 0 &&
	    (m->store != NULL || master_pending(m) == 0))
		master_begin_confirm(m);
}

void master_on_turn(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;

	master_store_record(m);
	master_dispatch(m);
	master_maybe_poll(m);
}

struct lost {
	struct master *m;
	int slot;
};

/* An update whose worker died: retried alone, or dead-lettered. */
static void lost_update(void *arg, struct dsp_entry *e, int timed_out)
{
	struct lost *l = arg;
	struct master *m = l->m;
	struct upd *u = upd_of(e);

	if (m->mc != NULL) {
		master_cluster_lost(m, e, timed_out, l->slot);
		return;
	}
	if (m->stopping && m->store != NULL)
		return;		/* stays journaled for the next start */
	if (timed_out) {
		m->n_failed++;
		log_warn("update %lld: its worker was killed after update_timeout "
		    "and kill_grace; not retried", (long long)u->id);
		master_finish(m, u, 1);
		return;
	}
	if (u->attempt >= m->cfg->max_attempts) {
		master_dead_letter(m, u, 1, "its worker died during each attempt");
		return;
	}
	u->attempt++;
	m->n_retried++;
	if (m->store != NULL && u->journaled &&
	    store_set_attempt(m->store, u->id, u->attempt) != 0)
		log_warn("journal: cannot store the attempt of update %lld: %s",
		    (long long)u->id, store_errmsg(m->store));
	log_warn("update %lld: retrying (attempt %d) after worker %d died",
	    (long long)u->id, u->attempt, l->slot);
	/* It keeps its key slots, so per-chat order holds. */
	dispatch_retry(m->dsp, e);
}

static void master_worker_closed(void *arg, struct wslot *w)
{
	struct master *m = arg;
	struct dsp_peer *p = workers_udata(w);

	if (p != NULL)
		dispatch_peer_close(m->dsp, p);
}

static int master_inflight_of(void *arg, const struct wslot *w)
{
	const struct dsp_peer *p = workers_udata(w);

	return p ? dispatch_peer_inflight(p) : 0;
}

static void master_worker_lost(void *arg, struct wslot *w)
{
	struct master *m = arg;
	struct dsp_peer *p = workers_udata(w);
	struct lost l = { m, workers_slot(w) };

	if (p != NULL) {
		workers_set_udata(w, NULL);
		dispatch_peer_remove(m->dsp, p, lost_update, &l);
	}
	if (m->stopping && master_inflight(m) == 0 &&
	    (m->store != NULL || master_pending(m) == 0))
		master_begin_confirm(m);
	else
		master_dispatch(m);
}

static void master_worker_stats(void *arg, struct wslot *w, const struct frame *f)
{
	struct master *m = arg;
	json_t *j;

	if (f->flags == FRAME_STATS_DUMP) {
		control_dump_answer(m->control, f->seq, f->payload, f->len);
		return;
	}
	j = json_loadb(f->payload, f->len, 0, NULL);
	if (j == NULL || metrics_add_api(m->metrics, j) != 0)
		log_warn("worker %d: malformed STATS frame ignored", workers_slot(w));
	json_decref(j);
}

/* workers.c has said why. */
static void worker_unusable(void *arg)
{
	master_exit(arg, EXIT_CONFIG);
}

const struct workers_cbs master_worker_cbs = {
	.worker_ready = master_worker_ready,
	.generation_ready = master_generation_ready,
	.generation_failed = master_generation_failed,
	.update_done = master_update_done,
	.stats = master_worker_stats,
	.worker_closed = master_worker_closed,
	.inflight_of = master_inflight_of,
	.worker_lost = master_worker_lost,
	.unusable = worker_unusable,
};

