/* The master: fetched updates, sequencing, dispatch, timeouts, signals, reload and shutdown; persistence is in master_store.c. */
#include "master.h"
#include "botapi.h"
#include "clock.h"
#include "evcurl.h"
#include "frame.h"
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

#include <event2/event.h>

#define STATS_INTERVAL_S 5
#define TICK_MS 250
/* How long stopped workers get to exit after DRAIN before they are killed. */
#define DRAIN_GRACE_MS 5000

static void begin_confirm(struct master *m);
static void start_reload(struct master *m);
static void master_generation_failed(struct master *m, int gen, const char *why);


/* ---- updates ------------------------------------------------------------- */

static void upd_free(struct upd *u)
{
	free(u->json);
	free(u);
}

static void track(struct wslot *w, struct upd *u)
{
	u->w = w;
	u->wprev = NULL;
	u->wnext = w->fl_head;
	if (w->fl_head)
		w->fl_head->wprev = u;
	w->fl_head = u;
	w->inflight++;
	w->m->inflight++;
}

static void untrack(struct upd *u)
{
	struct wslot *w = u->w;

	if (w == NULL)
		return;
	if (u->wprev)
		u->wprev->wnext = u->wnext;
	else
		w->fl_head = u->wnext;
	if (u->wnext)
		u->wnext->wprev = u->wprev;
	u->wprev = u->wnext = NULL;
	u->w = NULL;
	u->cancel_sent_ms = 0;
	w->inflight--;
	w->m->inflight--;
	if (w->inflight == 0)
		w->isolated = 0;
}

/* Forget `u`: its keys are released and successors may run. */
static void finish(struct master *m, struct upd *u, int journal_done_too)
{
	seq_remove(m->seq, &u->se);
	u64map_del(&m->upds, (uint64_t)u->id);
	m->pending--;
	if (journal_done_too && u->journaled)
		master_store_done(m, u->id);
	upd_free(u);
}

/*
 * Record the update `json` (copied) as pending. NULL when it is not new.
 * `valid`: the bytes were validated already (a getUpdates answer's element).
 */
struct upd *master_add_update(struct master *m, const char *json, size_t len,
    int attempt, int valid)
{
	struct update_keys k;
	struct upd *u;

	if ((valid ? keys_extract_raw_valid(json, len, &k) :
	    keys_extract_raw(json, len, &k)) != 0) {
		log_warn("an update that is not a JSON object with an integer "
		    "update_id; skipped");
		return NULL;
	}
	if (u64map_get(&m->upds, (uint64_t)k.update_id) != NULL)
		return NULL;
	u = calloc(1, sizeof(*u));
	if (u == NULL || (u->json = malloc(len + 1)) == NULL) {
		free(u);
		fatalx("out of memory for update %lld", (long long)k.update_id);
	}
	memcpy(u->json, json, len);
	u->json[len] = '\0';
	u->id = k.update_id;
	u->len = len;
	u->attempt = attempt;
	u->type = k.type;
	u->fetched_ms = clock_ms();
	if (k.type != UPD_UNKNOWN && (m->cfg->bypass & (1u << k.type)))
		u->se.nkeys = 0;
	else
		u->se.nkeys = seqkeys_for(&k, m->cfg->sequentialize, u->se.keys);
	if (u64map_put(&m->upds, (uint64_t)u->id, u) != 0 || seq_add(m->seq, &u->se) != 0)
		fatalx("out of memory for update %lld", (long long)u->id);
	m->pending++;
	return u;
}

/* ---- polling ---------------------------------------------------------------- */

static void on_batch(void *arg, const struct poller_item *items, size_t n)
{
	struct master *m = arg;
	struct store_rec *recs = NULL;
	size_t nrec = 0;

	m->last_poll_ok_ms = clock_ms();
	if (m->store != NULL && n > 0 && (recs = calloc(n, sizeof(*recs))) == NULL)
		fatalx("out of memory");
	for (size_t i = 0; i < n; i++) {
		struct upd *u = master_add_update(m, items[i].json, items[i].len, 1, 1);

		if (u == NULL)
			continue;	/* not an update, or one we hold already */
		if (u->id < m->next_offset) {
			/* Confirmed before (an answer to an older offset): drop it again. */
			finish(m, u, 0);
			continue;
		}
		m->n_fetched++;
		m->next_offset = u->id + 1;
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
				struct upd *u = u64map_get(&m->upds, (uint64_t)recs[i].update_id);

				if (u != NULL)
					u->journaled = 1;
			}
		}
	}
	free(recs);
	master_dispatch(m);
	master_maybe_poll(m);
}

static void on_rejected(void *arg, int code, const char *desc)
{
	struct master *m = arg;

	log_err("the Bot API rejected the token (%d %s); check the token and "
	    "[bot] api_url", code, desc);
	master_exit(m, EXIT_TOKEN);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;

	log_warn("workers did not exit within %d ms of DRAIN; killing them",
	    DRAIN_GRACE_MS);
	workers_kill_all(m, SIGKILL);
	master_exit(m, m->exit_status);
}

static void on_confirmed(void *arg, int ok)
{
	struct master *m = arg;
	struct timeval tv = { DRAIN_GRACE_MS / 1000, (DRAIN_GRACE_MS % 1000) * 1000 };

	if (ok)
		log_info("offset %lld confirmed", (long long)m->next_offset);
	workers_drain(m);
	if (workers_alive(m) == 0) {
		master_exit(m, EXIT_OK);
		return;
	}
	m->drain_ev = evtimer_new(m->base, on_drain_timeout, m);
	if (m->drain_ev == NULL || evtimer_add(m->drain_ev, &tv) != 0)
		fatalx("cannot start the drain timer");
}

void master_maybe_poll(struct master *m)
{
	int room;

	if (!m->started || m->stopping || m->journal_blocked || m->paused ||
	    poller_busy(m->poller))
		return;
	room = m->cfg->max_pending - m->pending;
	if (room <= 0) {
		log_debug("backpressure: %d pending; polling paused", m->pending);
		return;
	}
	poller_poll(m->poller, m->next_offset,
	    room < m->cfg->poll_limit ? room : m->cfg->poll_limit);
}

/* ---- dispatch -------------------------------------------------------------- */

static int usable(const struct master *m, const struct wslot *w)
{
	return w->gen == m->gen && w->state == W_READY && w->bev != NULL &&
	    !w->isolated && !w->reserved;
}

static struct wslot *least_loaded(struct master *m)
{
	struct wslot *best = NULL;

	for (struct wslot *w = m->workers; w; w = w->next) {
		if (!usable(m, w) || w->inflight >= m->cfg->worker_concurrency)
			continue;
		if (best == NULL || w->inflight < best->inflight)
			best = w;
	}
	return best;
}

static struct upd *upd_of(struct seq_entry *e)
{
	return e ? (struct upd *)((char *)e - offsetof(struct upd, se)) : NULL;
}

static void push_retry(struct master *m, struct upd *u)
{
	u->retry_next = NULL;
	if (m->retry_tail)
		m->retry_tail->retry_next = u;
	else
		m->retry_head = u;
	m->retry_tail = u;
}

static void pop_retry(struct master *m)
{
	struct upd *u = m->retry_head;

	m->retry_head = u->retry_next;
	if (m->retry_head == NULL)
		m->retry_tail = NULL;
	u->retry_next = NULL;
}

static int send_to(struct master *m, struct wslot *w, struct upd *u)
{
	if (workers_send_update(m, w, u) != 0)
		return -1;
	if (u->dispatched_ms == 0)
		metrics_observe_dispatch(m->metrics, clock_ms() - u->fetched_ms);
	u->dispatched_ms = clock_ms();
	track(w, u);
	return 0;
}

/*
 * Retried updates each go to an idle worker and run there alone. When no
 * worker is idle, the least loaded one is reserved: it gets no new work
 * until it is idle, so retries cannot starve under load.
 */
static void dispatch_retries(struct master *m)
{
	while (m->retry_head != NULL && m->inflight < m->cfg->concurrency) {
		struct wslot *idle = NULL, *w;

		for (w = m->workers; w; w = w->next) {
			if (w->gen == m->gen && w->state == W_READY && w->bev != NULL &&
			    !w->isolated && w->inflight == 0) {
				idle = w;
				break;
			}
		}
		if (idle == NULL) {
			for (w = m->workers; w; w = w->next)
				if (w->reserved && w->gen == m->gen && w->state == W_READY)
					return;
			if ((w = least_loaded(m)) != NULL)
				w->reserved = 1;
			return;
		}
		idle->reserved = 0;
		if (send_to(m, idle, m->retry_head) != 0)
			return;
		pop_retry(m);
		idle->isolated = 1;
	}
}

void master_dispatch(struct master *m)
{
	struct wslot *w;
	struct upd *u;

	/* With the journal, a stop leaves pending updates for the next start. */
	if (m->stopping && m->store != NULL)
		return;
	dispatch_retries(m);
	while (m->inflight < m->cfg->concurrency && (w = least_loaded(m)) != NULL) {
		u = upd_of(seq_next_ready(m->seq));
		if (u == NULL)
			return;
		if (send_to(m, w, u) != 0) {
			push_retry(m, u);
			return;
		}
	}
}

/* ---- results from workers ---------------------------------------------------- */

static void master_worker_ready(struct master *m, struct wslot *w)
{
	log_debug("worker %d (pid %ld) ready", w->slot, (long)w->pid);
	if (!m->started && ++m->nready == m->cfg->worker_count) {
		m->started = 1;
		log_notice("%d workers ready; polling %s as bot \"%s\"",
		    m->cfg->worker_count, m->cfg->api_url, m->cfg->name);
		notify_ready(&m->sd);
	}
	master_dispatch(m);
	master_maybe_poll(m);
}

static void dead_letter(struct master *m, struct upd *u, const char *why)
{
	m->n_dead++;
	if (m->store != NULL && u->journaled &&
	    store_dead_letter(m->store, u->id, u->attempt, why) == 0) {
		log_err("update %lld (%s): dead-lettered after %d attempts: %s "
		    "(tgrunctl dead-letters show %lld)", (long long)u->id,
		    keys_type_name(u->type), u->attempt, why, (long long)u->id);
		finish(m, u, 0);
		return;
	}
	log_err("update %lld (%s): dropped after %d attempts: %s", (long long)u->id,
	    keys_type_name(u->type), u->attempt, why);
	finish(m, u, 1);
}

static void master_update_done(struct master *m, struct wslot *w, int64_t id,
    int status, uint32_t ms)
{
	struct upd *u = u64map_get(&m->upds, (uint64_t)id);
	int timed_out;

	if (u == NULL || u->w != w) {
		log_warn("worker %d: DONE for update %lld it was not running; ignored",
		    w->slot, (long long)id);
		return;
	}
	timed_out = u->cancel_sent_ms != 0;
	untrack(u);
	metrics_observe_handler(m->metrics, ms);
	if (status == FRAME_ST_OK) {
		w->done++;
		m->n_done++;
	} else {
		w->failed++;
		m->n_failed++;
		if (timed_out)
			log_warn("update %lld (%s): cancelled after update_timeout; its keys "
			    "are released now", (long long)id, keys_type_name(u->type));
		else if (status == FRAME_ST_CANCELLED && m->stopping)
			log_info("update %lld: cancelled by the stop", (long long)id);
		else
			log_info("update %lld (%s) failed in worker %d after %u ms",
			    (long long)id, keys_type_name(u->type), w->slot, ms);
	}
	if (status == FRAME_ST_CANCELLED && m->stopping && !timed_out && m->store) {
		/* Cancelled by the stop: it stays journaled for the next start. */
	} else {
		finish(m, u, 1);
	}
	if (w->recycle_at && w->done + w->failed >= w->recycle_at && !w->recycling &&
	    !m->stopping)
		workers_recycle(m, w);
	if (m->stopping) {
		if (m->inflight == 0 && (m->store != NULL || m->pending == 0))
			begin_confirm(m);
		else
			master_dispatch(m);
		return;
	}
	master_dispatch(m);
	master_maybe_poll(m);
}

static void master_worker_lost(struct master *m, struct wslot *w)
{
	struct upd *u;

	while ((u = w->fl_head) != NULL) {
		int timed_out = u->cancel_sent_ms != 0;

		untrack(u);
		if (m->stopping && m->store != NULL)
			continue;	/* stays journaled for the next start */
		if (timed_out) {
			m->n_failed++;
			log_warn("update %lld: its worker was killed after update_timeout "
			    "and kill_grace; not retried", (long long)u->id);
			finish(m, u, 1);
			continue;
		}
		if (u->attempt >= m->cfg->max_attempts) {
			dead_letter(m, u, "its worker died during each attempt");
			continue;
		}
		u->attempt++;
		m->n_retried++;
		if (m->store != NULL && u->journaled &&
		    store_set_attempt(m->store, u->id, u->attempt) != 0)
			log_warn("journal: cannot store the attempt of update %lld: %s",
			    (long long)u->id, store_errmsg(m->store));
		log_warn("update %lld: retrying (attempt %d) after worker %d died",
		    (long long)u->id, u->attempt, w->slot);
		/* It keeps its key slots, so per-chat order holds. */
		push_retry(m, u);
	}
	w->isolated = w->reserved = 0;
	if (m->stopping && m->inflight == 0 && (m->store != NULL || m->pending == 0))
		begin_confirm(m);
	else
		master_dispatch(m);
}

/* ---- timeouts and heartbeats ---------------------------------------------------- */

static void check_timeouts(struct master *m, int64_t now)
{
	for (struct wslot *w = m->workers; w; w = w->next) {
		for (struct upd *u = w->fl_head; u; u = u->wnext) {
			if (u->cancel_sent_ms == 0 &&
			    now - u->dispatched_ms >= m->cfg->update_timeout_ms) {
				log_warn("update %lld: running for %lld ms, over update_timeout; "
				    "cancelling it", (long long)u->id,
				    (long long)(now - u->dispatched_ms));
				m->n_timeout++;
				u->cancel_sent_ms = now;
				if (workers_send_cancel(w, u->id) != 0 && w->pid > 0)
					kill(w->pid, SIGKILL);
			} else if (u->cancel_sent_ms != 0 &&
			    now - u->cancel_sent_ms >= m->cfg->kill_grace_ms && w->pid > 0) {
				log_err("worker %d (pid %ld): update %lld did not end within "
				    "kill_grace of its cancel; killing the worker", w->slot,
				    (long)w->pid, (long long)u->id);
				kill(w->pid, SIGKILL);
				break;
			}
		}
	}
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;
	int64_t now = clock_ms();
	int64_t every = m->cfg->heartbeat_timeout_ms / 4;

	check_timeouts(m, now);
	if (now - m->last_ping_ms >= (every > TICK_MS ? every : TICK_MS)) {
		m->last_ping_ms = now;
		workers_heartbeat(m);
	}
}

/* ---- stop ------------------------------------------------------------------------ */

/* The lowest update id not finished, or the next offset. */
static int64_t confirm_offset(struct master *m)
{
	int64_t low = m->next_offset;

	/* Journaled updates survive in the journal: everything fetched may go. */
	if (m->store != NULL)
		return low;
	for (size_t i = 0; i < m->upds.cap; i++) {
		struct upd *u = m->upds.vals[i];

		if (m->upds.keys[i] != 0 && u->id < low)
			low = u->id;
	}
	return low;
}

static void begin_confirm(struct master *m)
{
	int64_t off;

	if (m->shutdown_ev == NULL)
		return;		/* confirming already */
	event_free(m->shutdown_ev);
	m->shutdown_ev = NULL;
	if (m->next_offset == 0) {
		on_confirmed(m, 0);
		return;
	}
	off = confirm_offset(m);
	if (m->pending > 0)
		log_notice("%d fetched updates not finished %s; confirming offset %lld",
		    m->pending, m->store ? "stay in the journal" : "are lost",
		    (long long)off);
	m->next_offset = off;
	poller_confirm(m->poller, off);
}

static void on_shutdown_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;
	struct timeval tv = { m->cfg->kill_grace_ms / 1000,
	    (m->cfg->kill_grace_ms % 1000) * 1000 };

	if (!m->stop_cancelled && m->inflight > 0) {
		/* First cancel: fibers see it in their next yielding call. */
		m->stop_cancelled = 1;
		log_warn("shutdown_timeout: cancelling %d updates still running",
		    m->inflight);
		for (struct wslot *w = m->workers; w; w = w->next)
			for (struct upd *u = w->fl_head; u; u = u->wnext)
				(void)workers_send_cancel(w, u->id);
		evtimer_add(m->shutdown_ev, &tv);
		return;
	}
	log_warn("shutdown: %d updates did not end; killing their workers", m->inflight);
	workers_kill_all(m, SIGKILL);
	begin_confirm(m);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	struct master *m = arg;
	struct timeval tv;

	if (m->stopping) {
		log_warn("second %s: stopping now", strsignal((int)sig));
		workers_kill_all(m, SIGKILL);
		master_exit(m, EXIT_OK);
		return;
	}
	m->stopping = 1;
	notify_stopping(&m->sd);
	log_notice("%s: stopping; %d updates in flight, %d pending",
	    strsignal((int)sig), m->inflight, m->pending);
	poller_stop(m->poller);
	tv.tv_sec = m->cfg->shutdown_timeout_ms / 1000;
	tv.tv_usec = (m->cfg->shutdown_timeout_ms % 1000) * 1000;
	m->shutdown_ev = evtimer_new(m->base, on_shutdown_timeout, m);
	if (m->shutdown_ev == NULL)
		fatalx("evtimer_new failed");
	evtimer_add(m->shutdown_ev, &tv);
	if (m->inflight == 0 && (m->store != NULL || m->pending == 0))
		begin_confirm(m);
}

/* ---- reload ---------------------------------------------------------------------- */

static void start_reload(struct master *m)
{
	char err[1024];
	struct config *c;

	notify_reloading(&m->sd);
	c = config_load(m->cfg->path, err, sizeof(err));
	if (c == NULL) {
		log_err("reload refused: %s; the running generation keeps serving", err);
		notify_ready(&m->sd);
		return;
	}
	botapi_proxy_secrets(c->api_proxy);
	if (c->journal_enabled != m->cfg->journal_enabled ||
	    strcmp(c->journal_path, m->cfg->journal_path) != 0 ||
	    c->journal_sync != m->cfg->journal_sync)
		log_warn("reload: [journal] changes take effect at the next start");
	if (strcmp(c->api_url, m->cfg->api_url) != 0)
		log_warn("reload: [bot] api_url changes take effect at the next start");
	if (c->control_enabled != m->cfg->control_enabled ||
	    strcmp(c->control_socket, m->cfg->control_socket) != 0 ||
	    (c->metrics_listen == NULL) != (m->cfg->metrics_listen == NULL) ||
	    (c->metrics_listen && strcmp(c->metrics_listen, m->cfg->metrics_listen) != 0))
		log_warn("reload: [control] and [metrics] changes take effect at the "
		    "next start");
	if (workers_throttle_prepare(m, c) != 0) {
		log_err("reload refused: [throttle] cannot be enabled; the running "
		    "generation keeps serving");
		config_free(c);
		notify_ready(&m->sd);
		return;
	}
	m->next_cfg = c;
	m->reloading = 1;
	m->reload_gen = (m->reload_gen > m->gen ? m->reload_gen : m->gen) + 1;
	log_notice("SIGHUP: starting worker generation %d (%d workers, %s)",
	    m->reload_gen, c->worker_count, c->handler);
	if (workers_start(m, c, m->reload_gen) != 0)
		master_generation_failed(m, m->reload_gen, "cannot start workers");
}

static void reload_finished(struct master *m)
{
	m->reloading = 0;
	notify_ready(&m->sd);
	if (m->reload_queued && !m->stopping) {
		m->reload_queued = 0;
		log_notice("running the reload queued during the last one");
		start_reload(m);
	}
}

static void master_generation_ready(struct master *m, int gen)
{
	struct config *old = m->cfg;
	int old_gen = m->gen;

	/* Keep what cannot change while running. */
	m->next_cfg->journal_enabled = old->journal_enabled;
	m->next_cfg->journal_sync = old->journal_sync;
	free(m->next_cfg->journal_path);
	m->next_cfg->journal_path = strdup(old->journal_path);
	free(m->next_cfg->api_url);
	m->next_cfg->api_url = strdup(old->api_url);
	if (m->next_cfg->journal_path == NULL || m->next_cfg->api_url == NULL)
		fatalx("out of memory");
	m->cfg = m->next_cfg;
	m->next_cfg = NULL;
	m->gen = gen;
	poller_set_config(m->poller, m->cfg);
	workers_throttle_apply(m, m->cfg);
	config_free(old);
	workers_drain_generation(m, old_gen);
	log_notice("reload done: generation %d serves (%s); generation %d drains",
	    gen, m->cfg->handler, old_gen);
	reload_finished(m);
	master_dispatch(m);
	master_maybe_poll(m);
}

static void master_generation_failed(struct master *m, int gen, const char *why)
{
	if (!m->reloading || gen != m->reload_gen)
		return;
	log_err("reload refused: the new workers failed to start (%s); generation "
	    "%d keeps serving", why, m->gen);
	workers_kill_generation(m, gen);
	config_free(m->next_cfg);
	m->next_cfg = NULL;
	reload_finished(m);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct master *m = arg;

	if (m->stopping)
		return;
	if (m->reloading || !m->started) {
		log_notice("SIGHUP during a reload or start-up: queued");
		m->reload_queued = 1;
		return;
	}
	start_reload(m);
}

/* ---- the loop ---------------------------------------------------------------------- */

static void on_chld(evutil_socket_t sig, short what, void *arg)
{
	struct master *m = arg;

	workers_reap(m);
	if (m->stopping && workers_alive(m) == 0 && m->shutdown_ev == NULL &&
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

	if (m->n_done != m->n_done_last || m->inflight > 0)
		log_info("fetched %llu, done %llu, failed %llu, in flight %d, "
		    "pending %d, %.0f updates/s",
		    (unsigned long long)m->n_fetched, (unsigned long long)m->n_done,
		    (unsigned long long)m->n_failed, m->inflight, m->pending, rate);
	notify_status(&m->sd, "%s; in flight %d, pending %d, done %llu, failed %llu, "
	    "dead letters %llu, %.0f updates/s", polling, m->inflight, m->pending,
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
	return m->stopping ? "stopping" :
	    !m->started ? "starting" :
	    m->paused ? "paused (control)" :
	    m->journal_blocked ? "paused (journal)" :
	    m->pending >= m->cfg->max_pending ? "paused (backpressure)" : "polling";
}

int master_request_reload(struct master *m)
{
	if (m->stopping)
		return -1;
	if (m->reloading || !m->started) {
		log_notice("reload requested during a reload or start-up: queued");
		m->reload_queued = 1;
		return 1;
	}
	log_notice("reload requested on the control socket");
	start_reload(m);
	return 0;
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

static void master_worker_stats(struct master *m, struct wslot *w, const struct frame *f)
{
	json_t *j;

	if (f->flags == FRAME_STATS_DUMP) {
		control_dump_answer(m->control, f->seq, f->payload, f->len);
		return;
	}
	j = json_loadb(f->payload, f->len, 0, NULL);
	if (j == NULL || metrics_add_api(m->metrics, j) != 0)
		log_warn("worker %d: malformed STATS frame ignored", w->slot);
	json_decref(j);
}

/* Runs only while the loop turns and workers answer heartbeats. */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;

	if (workers_healthy(m))
		notify_watchdog(&m->sd);
	else
		log_warn("watchdog: a worker misses heartbeats; not telling systemd");
}

void master_exit(struct master *m, int status)
{
	if (status > m->exit_status)
		m->exit_status = status;
	if (status != EXIT_OK)
		workers_kill_all(m, SIGKILL);
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
	while (workers_alive(m) > 0 && clock_ms() < end) {
		struct timespec ts = { 0, 20 * 1000000 };

		workers_reap(m);
		nanosleep(&ts, NULL);
	}
	if (workers_alive(m) > 0) {
		workers_kill_all(m, SIGKILL);
		while (workers_alive(m) > 0) {
			struct timespec ts = { 0, 10 * 1000000 };

			workers_reap(m);
			nanosleep(&ts, NULL);
		}
	}
}

static void master_free(struct master *m)
{
	poller_free(m->poller);
	workers_free(m);
	for (size_t i = 0; i < m->upds.cap; i++)
		if (m->upds.keys[i] != 0)
			upd_free(m->upds.vals[i]);
	u64map_free(&m->upds);
	seq_free(m->seq);
	evcurl_free(m->ec);
	store_close(m->store);
	control_free(m->control);
	metrics_free(m->metrics);
	master_status_free(m);
	struct event *evs[] = { m->sig_term, m->sig_int, m->sig_hup, m->sig_chld,
	    m->stats_ev, m->shutdown_ev, m->watchdog_ev, m->tick_ev, m->journal_ev,
	    m->drain_ev };
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i] != NULL)
			event_free(evs[i]);
	if (m->base)
		event_base_free(m->base);
	free(m->worker_path);
	config_free(m->next_cfg);
}

/* workers.c has said why. */
static void worker_unusable(struct master *m)
{
	master_exit(m, EXIT_CONFIG);
}

static const struct workers_cbs worker_cbs = {
	.worker_ready = master_worker_ready,
	.generation_ready = master_generation_ready,
	.generation_failed = master_generation_failed,
	.update_done = master_update_done,
	.stats = master_worker_stats,
	.worker_lost = master_worker_lost,
	.unusable = worker_unusable,
};

int master_run(struct config *cfg, const char *token)
{
	struct master m;
	struct poller_cbs cbs = { on_batch, on_rejected, on_confirmed, &m };
	int status;

	memset(&m, 0, sizeof(m));
	m.cfg = cfg;
	m.token = token;
	m.gen = 1;
	workers_set_cbs(&m, &worker_cbs);
	u64map_init(&m.upds);
	signal(SIGPIPE, SIG_IGN);
	m.worker_path = workers_find_binary();
	m.base = event_base_new();
	/* getUpdates and its confirmations: one connection kept across polls. */
	m.ec = m.base ? evcurl_new(m.base, 4) : NULL;
	m.seq = seq_new();
	if (m.worker_path == NULL || m.ec == NULL || m.seq == NULL)
		fatalx("cannot set up the event loop");
	if (master_store_open(&m) != 0) {
		master_free(&m);
		config_free(cfg);
		return EXIT_CONFIG;
	}
	m.poller = poller_new(m.base, m.ec, cfg, token, &cbs);
	if (m.poller == NULL)
		fatalx("cannot set up the poller");
	if (ops_start(&m) != 0) {
		master_free(&m);
		config_free(cfg);
		return EXIT_RUNTIME;
	}
	m.sig_term = add_signal(&m, SIGTERM, on_stop_signal);
	m.sig_int = add_signal(&m, SIGINT, on_stop_signal);
	m.sig_hup = add_signal(&m, SIGHUP, on_hup);
	m.sig_chld = add_signal(&m, SIGCHLD, on_chld);
	m.stats_ev = add_timer(&m, STATS_INTERVAL_S * 1000, on_stats);
	m.tick_ev = add_timer(&m, TICK_MS, on_tick);
	m.last_stats_ms = clock_ms();
	notify_init(&m.sd);
	if (notify_watchdog_interval_usec(&m.sd) > 0)
		m.watchdog_ev = add_timer(&m,
		    (int64_t)(notify_watchdog_interval_usec(&m.sd) / 2000), on_watchdog);

	if (workers_throttle_prepare(&m, cfg) != 0) {
		master_free(&m);
		config_free(cfg);
		return EXIT_RUNTIME;
	}
	log_info("starting %d workers (%s)", cfg->worker_count, cfg->handler);
	if (workers_start(&m, cfg, m.gen) != 0)
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
