/* The master's loop: polling into the pending set, timers, signals and the parts it ties together. */
#include "master.h"
#include "master_cluster.h"
#include "botapi.h"
#include "clock.h"
#include "evcurl.h"
#include "frame.h"
#include "jscan.h"
#include "store.h"
#include "log.h"
#include "poller.h"
#include "control.h"
#include "metrics.h"
#include "seqkeys.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#define STATS_INTERVAL_S 5
#define TICK_MS 250
/* A tick this late means the loop did not run meanwhile (see on_tick). */
#define STALL_MS (4 * TICK_MS)


/* ---- updates ------------------------------------------------------------- */

/* Forget `u`: its keys are released and successors may run. */
void master_finish(struct master *m, struct upd *u, int journal_done_too)
{
	dispatch_forget(m->dsp, &u->de);
	if (journal_done_too && u->journaled)
		master_store_done(m, u->id);
	pending_remove(m->pend, u);
}

/*
 * Record the update `json` (copied) as pending. NULL when it is not new.
 * `valid`: the bytes were validated already (a getUpdates answer's element).
 */
struct upd *master_add_update(struct master *m, const char *json, size_t len,
    int attempt, int valid)
{
	struct upd *u;
	int64_t id;

	if (pending_add(m->pend, json, len, attempt, valid, &id, &u) == PENDING_BAD)
		log_warn("an update that is not a JSON object with an integer "
		    "update_id (%zu bytes); skipped", len);
	if (u != NULL && (u->refused = master_refusal(u)) != NULL)
		log_warn("update %lld: %s; it will be dead-lettered", (long long)u->id,
		    u->refused);
	return u;
}

const char *master_refusal(const struct upd *u)
{
	if (u->id < 0)
		return "a negative update_id";
	if (u->id == INT64_MAX)
		return "an update_id no offset can confirm";
	if (u->len > FRAME_MAX_PAYLOAD)
		return "larger than the 8 MiB a worker takes";
	return NULL;
}

int64_t master_offset_after(int64_t id)
{
	return id < INT64_MAX ? id + 1 : INT64_MAX;
}

int master_pending(const struct master *m)
{
	return (int)pending_count(m->pend);
}

int master_inflight(const struct master *m)
{
	return dispatch_counts(m->dsp).inflight;
}

/* ---- polling ---------------------------------------------------------------- */

/* Why a worker cannot decode an update, for its dead letter. */
static const char *undecodable(int err)
{
	switch (err) {
	case JSCAN_ENUL:
		return "a worker cannot decode it: \\u0000 in a string";
	case JSCAN_EINT:
		return "a worker cannot decode it: an integer out of 64-bit range";
	case JSCAN_EREAL:
		return "a worker cannot decode it: a number that overflows a double";
	default:
		return "a worker cannot decode it";
	}
}

static void on_batch(void *arg, const struct poller_item *items, size_t n)
{
	struct master *m = arg;
	struct store_rec *recs = NULL;
	size_t nrec = 0;

	int64_t asked = m->next_offset;	/* this batch answers that offset */

	/* Not the leader any more: the batch stays unconfirmed for the next one. */
	if (m->mc != NULL && !master_cluster_may_poll(m))
		return;
	m->last_poll_ok_ms = clock_ms();
	if (m->store != NULL && n > 0 && (recs = calloc(n, sizeof(*recs))) == NULL)
		fatalx("out of memory");
	for (size_t i = 0; i < n; i++) {
		struct upd *u = master_add_update(m, items[i].json, items[i].len, 1, 1);

		if (u == NULL)
			continue;	/* not an update (logged), or one we hold already */
		if (items[i].err != 0 && u->refused == NULL) {
			u->refused = undecodable(items[i].err);
			log_warn("update %lld: %s; it will be dead-lettered",
			    (long long)u->id, u->refused);
		}
		if (asked != 0 && u->id < asked) {
			/* Confirmed before: Telegram has forgotten it, and so do we. */
			log_warn("update %lld: below offset %lld, which confirmed it "
			    "already; dropped", (long long)u->id, (long long)asked);
			master_finish(m, u, 0);
			continue;
		}
		m->n_fetched++;
		/* Ids out of order still all run; the offset passes the highest. */
		if (master_offset_after(u->id) > m->next_offset)
			m->next_offset = master_offset_after(u->id);
		if (recs != NULL) {
			recs[nrec].update_id = u->id;
			recs[nrec].body = u->json;
			recs[nrec].len = u->len;
			nrec++;
		}
	}
	/* The next getUpdates confirms this batch: the journal commit comes first. */
	if (m->store != NULL && (nrec > 0 || m->journal_blocked)) {
		if (m->journal_blocked || store_add_batch(m->store, recs, nrec,
		    m->next_offset) < 0) {
			master_store_blocked(m);
		} else {
			for (size_t i = 0; i < nrec; i++) {
				struct upd *u = pending_get(m->pend, recs[i].update_id);

				if (u != NULL)
					u->journaled = 1;
			}
		}
	}
	free(recs);
	master_dispatch(m);
	master_maybe_poll(m);
}

static void on_skip(void *arg, int64_t id)
{
	struct master *m = arg;

	if (master_offset_after(id) > m->next_offset)
		m->next_offset = master_offset_after(id);
	master_maybe_poll(m);
}

static void on_conflict(void *arg)
{
	struct master *m = arg;

	if (m->mc != NULL)
		master_cluster_conflict(m);
}

/* A getUpdates is about to go out: a cluster node sends it only while it leads. */
static int may_send(void *arg)
{
	struct master *m = arg;

	return m->mc == NULL || master_cluster_may_poll(m);
}

/* The poller's wait is over: poll again only if nothing stops it now. */
static void on_poll_ready(void *arg)
{
	master_maybe_poll(arg);
}

static void on_rejected(void *arg, int code, const char *desc)
{
	struct master *m = arg;

	log_err("the Bot API rejected the token (%d %s); check the token and "
	    "[bot] api_url", code, desc);
	master_exit(m, EXIT_TOKEN);
}

void master_maybe_poll(struct master *m)
{
	int room;

	if (!m->started || m->stopping || m->journal_blocked || m->paused ||
	    poller_busy(m->poller))
		return;
	if (m->mc != NULL && !master_cluster_may_poll(m))
		return;
	room = m->cfg->max_pending - master_pending(m);
	if (room <= 0) {
		log_debug("backpressure: %d pending; polling paused", master_pending(m));
		return;
	}
	poller_poll(m->poller, m->next_offset,
	    room < m->cfg->poll_limit ? room : m->cfg->poll_limit);
}

/* ---- timeouts and heartbeats ---------------------------------------------------- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;
	int64_t now = clock_ms();
	int64_t every = m->cfg->heartbeat_timeout_ms / 4;
	int64_t gap = now - m->last_tick_ms;

	/*
	 * The loop did not run (SIGSTOP, a frozen machine, starved): that time
	 * does not count against running updates. Frames queued for a worker
	 * just before were not even written, and would be cancelled on arrival.
	 */
	m->last_tick_ms = now;
	if (gap > STALL_MS) {
		log_warn("the master did not run for %lld ms (stopped or starved of CPU); "
		    "running updates get that time back before update_timeout",
		    (long long)(gap - TICK_MS));
		dispatch_stalled(m->dsp, gap - TICK_MS);
	}
	dispatch_tick(m->dsp, now);
	if (dispatch_retry_due(m->dsp, now))
		master_dispatch(m);
	if (m->mc != NULL)
		master_cluster_tick(m);
	if (now - m->last_ping_ms >= (every > TICK_MS ? every : TICK_MS)) {
		m->last_ping_ms = now;
		workers_heartbeat(m->pool);
	}
}

/* ---- the loop ---------------------------------------------------------------------- */

static void on_chld(evutil_socket_t sig, short what, void *arg)
{
	struct master *m = arg;

	workers_reap(m->pool);
	if (m->stopping && workers_alive(m->pool) == 0 && m->shutdown_ev == NULL &&
	    !poller_busy(m->poller))
		master_exit(m, m->exit_status);
}

static void on_stats(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;
	int64_t now = clock_ms();
	double secs = (double)(now - m->last_stats_ms) / 1000.0;
	double rate = secs > 0 ? (double)(m->n_done - m->n_done_last) / secs : 0.0;
	const char *polling = master_polling_state(m);

	int inflight = master_inflight(m), pending = master_pending(m);

	if (m->n_done != m->n_done_last || inflight > 0)
		log_info("fetched %llu, done %llu, failed %llu, in flight %d, "
		    "pending %d, %.0f updates/s",
		    (unsigned long long)m->n_fetched, (unsigned long long)m->n_done,
		    (unsigned long long)m->n_failed, inflight, pending, rate);
	notify_status(&m->sd, "%s%s; in flight %d, pending %d, done %llu, failed %llu, "
	    "dead letters %llu, %.0f updates/s", m->mc == NULL ? "" :
	    master_cluster_may_poll(m) ? "leader: " : "follower: ", polling, inflight, pending,
	    (unsigned long long)m->n_done, (unsigned long long)m->n_failed,
	    (unsigned long long)m->n_dead, rate);
	m->n_done_last = m->n_done;
	m->last_stats_ms = now;
	m->rate = rate;
}

/* ---- operations: control socket and metrics ----------------------------------------- */

static int ops_start(struct master *m)
{
	struct status_ops ops;
	char err[512];

	if (master_status_ops(m, &ops) != 0 ||
	    (m->metrics = metrics_new(m->base, &ops)) == NULL)
		fatalx("out of memory");
	if (m->cfg->metrics_listen != NULL &&
	    metrics_listen(m->metrics, m->cfg->metrics_listen, err, sizeof(err)) != 0) {
		log_err("%s", err);
		return -1;
	}
	if (m->cfg->control_enabled &&
	    (m->control = control_new(m->base, &ops, m->cfg->control_socket, err,
	    sizeof(err))) == NULL) {
		log_err("%s", err);
		return -1;
	}
	return 0;
}

const char *master_polling_state(const struct master *m)
{
	if (m->mc != NULL && !m->stopping && m->started && !master_cluster_may_poll(m))
		return "not polling (follower)";
	return m->stopping ? "stopping" :
	    !m->started ? "starting" :
	    m->paused ? "paused (control)" :
	    m->journal_blocked ? "paused (journal)" :
	    master_pending(m) >= m->cfg->max_pending ? "paused (backpressure)" :
	    "polling";
}

void master_set_paused(struct master *m, int paused)
{
	if (m->paused == paused)
		return;
	m->paused = paused;
	log_notice("polling %s on the control socket", paused ? "paused" : "resumed");
	if (!paused)
		master_maybe_poll(m);
}

/* Runs only while the loop turns and workers answer heartbeats. */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;

	if (workers_healthy(m->pool))
		notify_watchdog(&m->sd);
	else
		log_warn("watchdog: a worker misses heartbeats; not telling systemd");
}

void master_exit(struct master *m, int status)
{
	if (status > m->exit_status)
		m->exit_status = status;
	if (status != EXIT_OK)
		workers_kill_all(m->pool, SIGKILL);
	event_base_loopbreak(m->base);
}

static struct event *add_signal(struct master *m, int sig, event_callback_fn cb)
{
	struct event *ev = evsignal_new(m->base, sig, cb, m);

	if (ev == NULL || event_add(ev, NULL) != 0)
		fatalx("cannot watch signal %d", sig);
	return ev;
}

static struct event *add_timer(struct master *m, int64_t ms, event_callback_fn cb)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	struct event *ev = event_new(m->base, -1, EV_PERSIST, cb, m);

	if (ev == NULL || event_add(ev, &tv) != 0)
		fatalx("cannot start a timer");
	return ev;
}

static void wait_children(struct master *m, int64_t grace_ms)
{
	int64_t end = clock_ms() + grace_ms;

	/* The loop has stopped: reap synchronously, then force. */
	while (workers_alive(m->pool) > 0 && clock_ms() < end) {
		struct timespec ts = { 0, 20 * 1000000 };

		workers_reap(m->pool);
		nanosleep(&ts, NULL);
	}
	if (workers_alive(m->pool) > 0) {
		workers_kill_all(m->pool, SIGKILL);
		while (workers_alive(m->pool) > 0) {
			struct timespec ts = { 0, 10 * 1000000 };

			workers_reap(m->pool);
			nanosleep(&ts, NULL);
		}
	}
}

static void master_free(struct master *m)
{
	poller_free(m->poller);
	workers_free(m->pool);
	dispatch_free(m->dsp);
	pending_free(m->pend);
	evcurl_free(m->ec);
	master_store_close(m);
	master_cluster_close(m);
	control_free(m->control);
	metrics_free(m->metrics);
	master_status_free(m);
	struct event *evs[] = { m->sig_term, m->sig_int, m->sig_hup, m->sig_chld,
	    m->stats_ev, m->shutdown_ev, m->watchdog_ev, m->tick_ev, m->journal_ev,
	    m->drain_ev, m->turn_ev };
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i] != NULL)
			event_free(evs[i]);
	if (m->base)
		event_base_free(m->base);
	config_free(m->next_cfg);
}

int master_run(struct config *cfg, const char *token)
{
	struct master m;
	struct poller_cbs cbs = { on_batch, on_rejected, on_skip, master_on_confirmed, &m,
	    on_conflict, on_poll_ready, may_send };
	int status;

	memset(&m, 0, sizeof(m));
	m.done_fd = -1;
	m.cfg = cfg;
	m.token = token;
	m.gen = 1;
	signal(SIGPIPE, SIG_IGN);
	m.base = event_base_new();
	/* getUpdates and its confirmations: one connection kept across polls. */
	m.ec = m.base ? evcurl_new(m.base, 4) : NULL;
	m.pend = pending_new();
	m.dsp = master_dispatch_new(&m);
	if (m.pend != NULL && m.dsp != NULL)
		master_apply_config(&m);
	if (m.base != NULL) {
		m.pool = workers_new(m.base, token, &master_worker_cbs, &m);
		m.turn_ev = event_new(m.base, -1, 0, master_on_turn, &m);
	}
	if (m.pool == NULL || m.ec == NULL || m.pend == NULL || m.dsp == NULL ||
	    m.turn_ev == NULL)
		fatalx("cannot set up the event loop");
	if (master_store_open(&m) != 0) {
		status = m.exit_status;
		master_free(&m);
		config_free(cfg);
		return status;
	}
	m.poller = poller_new(m.base, m.ec, cfg, token, &cbs);
	if (m.poller == NULL)
		fatalx("cannot set up the poller");
	if (master_cluster_open(&m) != 0) {
		master_free(&m);
		config_free(cfg);
		return EXIT_RUNTIME;
	}
	if (ops_start(&m) != 0) {
		master_free(&m);
		config_free(cfg);
		return EXIT_RUNTIME;
	}
	m.sig_term = add_signal(&m, SIGTERM, master_on_stop_signal);
	m.sig_int = add_signal(&m, SIGINT, master_on_stop_signal);
	m.sig_hup = add_signal(&m, SIGHUP, master_on_hup);
	m.sig_chld = add_signal(&m, SIGCHLD, on_chld);
	m.stats_ev = add_timer(&m, STATS_INTERVAL_S * 1000, on_stats);
	m.last_tick_ms = clock_ms();
	m.tick_ev = add_timer(&m, TICK_MS, on_tick);
	m.last_stats_ms = clock_ms();
	m.retry_rng = (uint64_t)m.last_stats_ms * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
	notify_init(&m.sd);
	if (notify_watchdog_interval_usec(&m.sd) > 0)
		m.watchdog_ev = add_timer(&m,
		    (int64_t)(notify_watchdog_interval_usec(&m.sd) / 2000), on_watchdog);

	if (workers_throttle_prepare(m.pool, cfg) != 0) {
		master_free(&m);
		config_free(cfg);
		return EXIT_RUNTIME;
	}
	log_info("starting %d workers (%s)", cfg->worker_count, cfg->handler);
	if (workers_start(m.pool, cfg, m.gen) != 0)
		fatalx("cannot allocate worker slots");
	event_base_dispatch(m.base);

	status = m.exit_status;
	wait_children(&m, m.stopping ? DRAIN_GRACE_MS : 0);
	if (status == EXIT_OK)
		log_notice("stopped: fetched %llu, done %llu, failed %llu, dead letters %llu",
		    (unsigned long long)m.n_fetched, (unsigned long long)m.n_done,
		    (unsigned long long)m.n_failed, (unsigned long long)m.n_dead);
	master_free(&m);
	config_free(m.cfg);	/* the one in use: a reload may have replaced cfg */
	return status;
}
