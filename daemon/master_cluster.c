/* The master in cluster mode: leader duties (poll, journal stream, release to the work queue) and running pulled work. */
#include "master.h"
#include "master_cluster.h"
#include "clock.h"
#include "cluster.h"
#include "dispatch.h"
#include "frame.h"
#include "keys.h"
#include "log.h"
#include "metrics.h"
#include "poller.h"
#include "store.h"
#include "store_js.h"
#include "workq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

/* A pulled item waits this long past update_timeout + kill_grace before redelivery. */
#define ACK_WAIT_SLACK_MS 5000
/* Becoming leader failed (stream unreachable): try again this often. */
#define LEAD_RETRY_MS 1000

struct mcluster {
	struct cluster *cl;
	struct workq *wq;
	struct pending *run;		/* pulled items, here or running in a worker */
	struct event *lead_ev;		/* retries taking up the leader's duties */
	int ready;			/* the work queue is open */
	int leading;			/* leader state built: polling and releasing */
	int epoch_pending;		/* the lease is ours, the duties are not taken yet */
	int capacity;			/* this node's: workers x worker_concurrency, <= concurrency */
	int outstanding;		/* released, not done (leader) */
	int64_t last_done_ms;		/* leader: the last completion (or taking up the duties) */
	uint64_t pulled, ran;
};

/* Marks a leader's update that went out on the work queue. */
static char published;

static void become_leader(struct master *m);

static int local_capacity(const struct config *c)
{
	int64_t n = (int64_t)c->worker_count * c->worker_concurrency;

	return n < c->concurrency ? (int)n : c->concurrency;
}

static int free_slots(const struct master *m)
{
	int n = m->mc->capacity - (int)pending_count(m->mc->run);

	return m->stopping || n < 0 ? 0 : n;
}

static void update_capacity(struct master *m)
{
	if (m->mc->wq != NULL)
		workq_set_capacity(m->mc->wq, free_slots(m));
}

/* ---- the leader ------------------------------------------------------------- */

/* How many released updates may be out at once: twice what the nodes can run. */
static int release_limit(struct master *m)
{
	int cap = cluster_capacity(m->mc->cl);

	if (cap < m->mc->capacity)
		cap = m->mc->capacity;
	return 2 * (cap > 0 ? cap : 1);
}

/* The sequencer's released updates go out on the work queue. */
static void release(struct master *m)
{
	struct mcluster *mc = m->mc;
	int limit;
	struct upd *u;

	if (!mc->leading || !cluster_leading(mc->cl))
		return;
	limit = release_limit(m);
	while (mc->outstanding < limit && (u = pending_next_ready(m->pend)) != NULL) {
		if (u->refused != NULL) {
			master_dead_letter(m, u, 0, u->refused);
			continue;
		}
		if (workq_publish(mc->wq, u->id, u->json, u->len) != 0) {
			/* The journal keeps it: the next leader releases it again. */
			log_err("cluster: cannot publish update %lld to the work queue",
			    (long long)u->id);
			continue;
		}
		u->ext = &published;
		mc->outstanding++;
	}
}

/* journal.done from the node that ran `id`: its keys are free. */
static void on_done(void *arg, int64_t id, int dead)
{
	struct master *m = arg;
	struct upd *u = pending_get(m->pend, id);

	if (u == NULL || !m->mc->leading)
		return;
	m->mc->last_done_ms = clock_ms();
	if (u->ext == &published)
		m->mc->outstanding--;
	master_finish(m, u, 0);
	event_active(m->turn_ev, EV_TIMEOUT, 0);
}

static void on_lead_retry(evutil_socket_t fd, short what, void *arg)
{
	become_leader(arg);
}

/* The lease is ours: the journal stream into the pending set, release, poll. */
static void become_leader(struct master *m)
{
	struct mcluster *mc = m->mc;
	struct timeval tv = { LEAD_RETRY_MS / 1000, (LEAD_RETRY_MS % 1000) * 1000 };
	char err[512];
	int64_t t0 = clock_ms();

	if (!mc->epoch_pending || mc->leading || !cluster_leading(mc->cl))
		return;
	/*
	 * A batch's acks are waited for on the loop, which also keeps the
	 * lease's deadline: lease/5 keeps a stalled leader's step-down within
	 * the lease.
	 */
	m->store = store_js_open(cluster_conn(mc->cl), cluster_js(mc->cl), m->cfg->name,
	    m->cfg->cluster_replicas, m->cfg->cluster_lease_ms / 5, err, sizeof(err));
	if (m->store == NULL) {
		log_err("cluster: %s; trying again", err);
		evtimer_add(mc->lead_ev, &tv);
		return;
	}
	m->next_offset = 0;
	if (master_store_replay(m) != 0 ||
	    store_js_follow(m->store, m->base, on_done, m) != 0) {
		log_err("cluster: reading the journal stream: %s; trying again",
		    store_errmsg(m->store));
		master_cluster_drop_leader(m);
		mc->epoch_pending = 1;
		evtimer_add(mc->lead_ev, &tv);
		return;
	}
	mc->epoch_pending = 0;
	mc->leading = 1;
	mc->last_done_ms = clock_ms();
	log_notice("cluster: leader duties taken in %lld ms: %d unfinished updates, "
	    "offset %lld", (long long)(clock_ms() - t0), master_pending(m),
	    (long long)m->next_offset);
	notify_status(&m->sd, "leader");
	master_dispatch(m);
	master_maybe_poll(m);
}

/* Stop polling and releasing at once; forget the leader's state. */
void master_cluster_drop_leader(struct master *m)
{
	struct mcluster *mc = m->mc;
	struct pending_rules r = { m->cfg->sequentialize, m->cfg->bypass };

	mc->leading = 0;
	mc->epoch_pending = 0;
	mc->outstanding = 0;
	poller_stop(m->poller);
	if (mc->wq != NULL)
		workq_drop_unpublished(mc->wq);
	if (m->store != NULL && store_done_pending(m->store) > 0 && store_flush(m->store) != 0)
		log_warn("cluster: flushing completions: %s", store_errmsg(m->store));
	store_close(m->store);
	m->store = NULL;
	pending_free(m->pend);
	if ((m->pend = pending_new()) == NULL)
		fatalx("out of memory");
	pending_set_rules(m->pend, &r);
	m->next_offset = 0;
	m->journal_blocked = 0;
}

static void on_leader(void *arg, int64_t epoch)
{
	struct master *m = arg;

	m->mc->epoch_pending = 1;
	become_leader(m);
}

static void on_follower(void *arg, int lost)
{
	struct master *m = arg;

	if (lost || m->mc->leading || m->mc->epoch_pending)
		master_cluster_drop_leader(m);
	notify_status(&m->sd, "follower");
}

/* ---- every node: pulled work on the local workers ---------------------------------- */

static void on_work(void *arg, struct workq_item *it, int64_t id, const char *body,
    size_t len, int delivery)
{
	struct master *m = arg;
	struct mcluster *mc = m->mc;
	struct upd *u = NULL;
	int64_t got;
	char why[96];

	mc->pulled++;
	if (delivery > m->cfg->max_attempts) {
		snprintf(why, sizeof(why), "delivered %d times; max_attempts is %d",
		    delivery, m->cfg->max_attempts);
		log_err("update %lld: dead-lettered: %s", (long long)id, why);
		m->n_dead++;
		workq_finish(mc->wq, it, WORKQ_DEAD, why);
		return;
	}
	switch (pending_add(mc->run, body, len, delivery, 1, &got, &u)) {
	case PENDING_NEW:
		break;
	case PENDING_HELD:
		/* Redelivered while it still runs here: the running one answers. */
		workq_finish(mc->wq, it, WORKQ_FAILED, NULL);
		return;
	case PENDING_BAD:
		log_err("update %lld: the work item is not an update; dead-lettered",
		    (long long)id);
		workq_finish(mc->wq, it, WORKQ_DEAD, "not a usable update");
		return;
	}
	u->ext = it;
	if ((u->refused = master_refusal(u)) != NULL) {
		log_err("update %lld: dead-lettered: %s", (long long)id, u->refused);
		workq_finish(mc->wq, it, WORKQ_DEAD, u->refused);
		pending_remove(mc->run, u);
		return;
	}
	update_capacity(m);
	if (!m->stopping)
		dispatch_run(m->dsp);
}

struct dsp_entry *master_cluster_next(struct master *m)
{
	struct upd *u = pending_next_ready(m->mc->run);

	return u ? &u->de : NULL;
}

/* `u` of the run set ended here with `r`. */
static void finish_run(struct master *m, struct upd *u, enum workq_result r)
{
	struct mcluster *mc = m->mc;

	if (r == WORKQ_OK)
		mc->ran++;
	workq_finish(mc->wq, u->ext, r, NULL);
	dispatch_forget(m->dsp, &u->de);
	pending_remove(mc->run, u);
	update_capacity(m);
}

void master_cluster_update_done(struct master *m, struct wslot *w, int64_t id,
    int status, uint32_t ms)
{
	struct upd *u = pending_get(m->mc->run, id);
	int timed_out = u ? dispatch_done(m->dsp, workers_udata(w), &u->de) : -1;
	enum workq_result r = WORKQ_OK;

	if (timed_out < 0) {
		log_warn("worker %d: DONE for update %lld it was not running; ignored",
		    workers_slot(w), (long long)id);
		return;
	}
	metrics_observe_handler(m->metrics, ms);
	if (status == FRAME_ST_OK) {
		m->n_done++;
	} else if (status == FRAME_ST_CANCELLED && m->stopping && !timed_out) {
		/* Cancelled by the stop: another node runs it. */
		r = WORKQ_FAILED;
	} else {
		m->n_failed++;
		log_info("update %lld (%s) %s in worker %d after %u ms", (long long)id,
		    keys_type_name(u->type), timed_out ? "cancelled after update_timeout" :
		    "failed", workers_slot(w), ms);
	}
	finish_run(m, u, r);
	event_active(m->turn_ev, EV_TIMEOUT, 0);
	if (m->stopping && master_inflight(m) == 0)
		master_begin_confirm(m);
}

void master_cluster_lost(struct master *m, struct dsp_entry *e, int timed_out, int slot)
{
	struct upd *u = (struct upd *)((char *)e - offsetof(struct upd, de));

	if (timed_out) {
		m->n_failed++;
		log_warn("update %lld: its worker was killed after update_timeout and "
		    "kill_grace; not retried", (long long)u->id);
		finish_run(m, u, WORKQ_OK);
		return;
	}
	m->n_retried++;
	log_warn("update %lld: worker %d died; handed back to the work queue",
	    (long long)u->id, slot);
	finish_run(m, u, WORKQ_FAILED);
}

/* ---- the loop's hooks ------------------------------------------------------------------ */

void master_cluster_dispatch(struct master *m)
{
	if (m->mc->leading)
		release(m);
	if (!m->stopping)
		dispatch_run(m->dsp);
}

int master_cluster_may_poll(const struct master *m)
{
	return m->mc->leading && cluster_leading(m->mc->cl);
}

void master_cluster_conflict(struct master *m)
{
	cluster_recheck(m->mc->cl);
}

static int64_t ack_wait_ms(const struct config *c)
{
	return c->update_timeout_ms + c->kill_grace_ms + ACK_WAIT_SLACK_MS;
}

void master_cluster_tick(struct master *m)
{
	struct mcluster *mc = m->mc;
	int64_t quiet = clock_ms() - mc->last_done_ms;

	cluster_set_load(mc->cl, mc->capacity, master_inflight(m));
	/*
	 * Updates are out and no completion came for longer than any of them
	 * may take to run or to come back: a publish or a completion was lost
	 * on its way (a NATS server died). The journal stream says what is
	 * unfinished: read it again and release from there (republishes of
	 * what is still queued are deduplicated).
	 */
	if (mc->leading && mc->outstanding > 0 && quiet > ack_wait_ms(m->cfg)) {
		log_warn("cluster: no completion for %lld ms with %d updates out; "
		    "re-reading the journal stream", (long long)quiet, mc->outstanding);
		master_cluster_drop_leader(m);
		mc->epoch_pending = 1;
		become_leader(m);
	}
}

static void on_ready(void *arg)
{
	struct master *m = arg;
	struct mcluster *mc = m->mc;
	struct workq_cbs cbs = { m, on_work };
	char err[512];
	int64_t ack_wait = ack_wait_ms(m->cfg);

	if (mc->wq == NULL)
		mc->wq = workq_open(cluster_conn(mc->cl), cluster_js(mc->cl), m->base,
		    m->cfg->name, m->cfg->cluster_replicas, ack_wait,
		    m->cfg->max_attempts + 1, &cbs, err, sizeof(err));
	if (mc->wq == NULL) {
		log_err("cluster: %s", err);
		master_exit(m, EXIT_RUNTIME);
		return;
	}
	mc->ready = 1;
	if (m->started)
		master_cluster_started(m);
}

void master_cluster_started(struct master *m)
{
	struct mcluster *mc = m->mc;

	if (!mc->ready || m->stopping)
		return;
	update_capacity(m);
	cluster_elect(mc->cl);
}

void master_cluster_apply_config(struct master *m)
{
	struct pending_rules none = { CFG_SEQ_NONE, 0 };

	m->mc->capacity = local_capacity(m->cfg);
	pending_set_rules(m->mc->run, &none);
	update_capacity(m);
}

/* What cannot change while running: the running [cluster] stays. */
void master_cluster_keep_config(const struct config *old, struct config *c)
{
	if ((old->cluster_nats == NULL) != (c->cluster_nats == NULL) ||
	    (old->cluster_nats && strcmp(old->cluster_nats, c->cluster_nats) != 0) ||
	    (old->cluster_node && c->cluster_node && strcmp(old->cluster_node, c->cluster_node) != 0) ||
	    old->cluster_replicas != c->cluster_replicas ||
	    old->cluster_lease_ms != c->cluster_lease_ms)
		log_warn("reload: [cluster] changes take effect at the next start");
	free(c->cluster_nats);
	free(c->cluster_node);
	free(c->cluster_credentials);
	c->cluster_nats = old->cluster_nats ? strdup(old->cluster_nats) : NULL;
	c->cluster_node = old->cluster_node ? strdup(old->cluster_node) : NULL;
	c->cluster_credentials = old->cluster_credentials ?
	    strdup(old->cluster_credentials) : NULL;
	c->cluster_replicas = old->cluster_replicas;
	c->cluster_lease_ms = old->cluster_lease_ms;
	if ((old->cluster_nats && !c->cluster_nats) || (old->cluster_node && !c->cluster_node) ||
	    (old->cluster_credentials && !c->cluster_credentials))
		fatalx("out of memory");
}

/*
 * SIGTERM: pull nothing more, hand back what waits here, and a leader
 * gives up the lease so that another node takes over at once.
 */
void master_cluster_stop(struct master *m)
{
	struct mcluster *mc = m->mc;
	size_t it = 0;
	struct upd *u, **waiting;
	size_t n = 0;

	update_capacity(m);
	waiting = calloc(pending_count(mc->run) + 1, sizeof(*waiting));
	if (waiting == NULL)
		fatalx("out of memory");
	while ((u = pending_walk(mc->run, &it)) != NULL)
		if (u->de.peer == NULL)
			waiting[n++] = u;
	for (size_t i = 0; i < n; i++)
		finish_run(m, waiting[i], WORKQ_FAILED);
	free(waiting);
	if (mc->leading || mc->epoch_pending)
		master_cluster_drop_leader(m);
	cluster_resign(mc->cl);
}

int master_cluster_open(struct master *m)
{
	struct mcluster *mc;
	struct cluster_cbs cbs = { m, on_ready, on_leader, on_follower };
	char err[512], urls[512];

	if (m->cfg->cluster_nats == NULL)
		return 0;
	if ((mc = calloc(1, sizeof(*mc))) == NULL || (mc->run = pending_new()) == NULL)
		fatalx("out of memory");
	m->mc = mc;
	master_cluster_apply_config(m);
	if ((mc->lead_ev = evtimer_new(m->base, on_lead_retry, m)) == NULL)
		fatalx("cannot start a timer");
	cluster_redact_urls(m->cfg->cluster_nats, urls, sizeof(urls));
	log_info("cluster: node %s, NATS %s, lease %lld ms, %d replicas",
	    m->cfg->cluster_node, urls, (long long)m->cfg->cluster_lease_ms,
	    m->cfg->cluster_replicas);
	if ((mc->cl = cluster_open(m->cfg, m->base, &cbs, err, sizeof(err))) == NULL) {
		log_err("%s", err);
		return -1;
	}
	return 0;
}

void master_cluster_close(struct master *m)
{
	struct mcluster *mc = m->mc;

	if (mc == NULL)
		return;
	workq_close(mc->wq);
	if (mc->run != NULL) {
		size_t it = 0;
		struct upd *u;

		/* Whatever is left is redelivered elsewhere: the items just go. */
		while ((u = pending_walk(mc->run, &it)) != NULL)
			u->ext = NULL;
		pending_free(mc->run);
	}
	cluster_close(mc->cl);
	if (mc->lead_ev)
		event_free(mc->lead_ev);
	free(mc);
	m->mc = NULL;
}

void master_cluster_status(struct master *m, struct master_cluster_status *out)
{
	struct mcluster *mc = m->mc;
	struct status_cluster *st = &out->st;

	cluster_status(mc->cl, &out->cl);
	*st = (struct status_cluster){
		.node = out->cl.node,
		.role = out->cl.role == CLUSTER_LEADER ? "leader" :
		    out->cl.role == CLUSTER_FOLLOWER ? "follower" : "starting",
		.leader = out->cl.leader[0] ? out->cl.leader : NULL,
		.epoch = out->cl.epoch,
		.nodes = out->cl.nodes,
		.nnodes = out->cl.nnodes < CLUSTER_LIST_MAX ? out->cl.nnodes : CLUSTER_LIST_MAX,
		.journal = out->cl.journal,
		.work = out->cl.work,
		.pulled = mc->pulled,
		.ran = mc->ran,
		.released_out = mc->outstanding,
	};
}
