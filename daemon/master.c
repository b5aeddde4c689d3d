/* The master: fetched updates, sequencing, dispatch to workers, signals and shutdown. */
#include "master.h"
#include "evcurl.h"
#include "frame.h"
#include "log.h"
#include "poller.h"

#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#define STATS_INTERVAL_S 5
/* How long stopped workers get to exit after DRAIN before they are killed. */
#define DRAIN_GRACE_MS 5000

static void dispatch(struct master *m);
static void maybe_poll(struct master *m);
static void begin_confirm(struct master *m);

int64_t master_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void upd_free(struct upd *u)
{
	free(u->json);
	free(u);
}

/* Forget `u` entirely: its keys are released and successors may run. */
static void finish(struct master *m, struct upd *u)
{
	seq_remove(m->seq, &u->se);
	u64map_del(&m->upds, (uint64_t)u->id);
	m->pending--;
	upd_free(u);
}

static void add_update(struct master *m, json_t *obj)
{
	struct update_keys k;
	struct upd *u;

	if (keys_extract(obj, &k) != 0) {
		log_warn("getUpdates: an update without an integer update_id; skipped");
		return;
	}
	if (k.update_id < m->next_offset || u64map_get(&m->upds, (uint64_t)k.update_id)) {
		log_debug("update %lld: seen already; skipped", (long long)k.update_id);
		return;
	}
	m->next_offset = k.update_id + 1;
	u = calloc(1, sizeof(*u));
	if (u == NULL || (u->json = json_dumps(obj, JSON_COMPACT)) == NULL) {
		free(u);
		fatalx("out of memory for update %lld", (long long)k.update_id);
	}
	u->id = k.update_id;
	u->len = strlen(u->json);
	u->attempt = 1;
	u->slot = -1;
	u->type = k.type;
	if (k.type != UPD_UNKNOWN && (m->cfg->bypass & (1u << k.type)))
		u->se.nkeys = 0;
	else
		u->se.nkeys = keys_for(&k, m->cfg->sequentialize, u->se.keys);
	if (u64map_put(&m->upds, (uint64_t)u->id, u) != 0 || seq_add(m->seq, &u->se) != 0)
		fatalx("out of memory for update %lld", (long long)u->id);
	m->pending++;
	m->n_fetched++;
}

static void on_batch(void *arg, json_t *updates)
{
	struct master *m = arg;
	size_t i;
	json_t *obj;

	json_array_foreach(updates, i, obj)
		add_update(m, obj);
	dispatch(m);
	maybe_poll(m);
}

static void on_rejected(void *arg, int code, const char *desc)
{
	struct master *m = arg;

	log_err("the Bot API rejected the token (%d %s); check the token and "
	    "[bot] api_url", code, desc);
	master_exit(m, EXIT_TOKEN);
}

static void on_confirmed(void *arg, int ok)
{
	struct master *m = arg;

	if (ok)
		log_info("offset %lld confirmed", (long long)m->next_offset);
	workers_drain(m);
	if (workers_alive(m) == 0)
		master_exit(m, EXIT_OK);
}

static void maybe_poll(struct master *m)
{
	int room;

	if (!m->started || m->stopping || poller_busy(m->poller))
		return;
	room = m->cfg->max_pending - m->pending;
	if (room <= 0) {
		log_debug("backpressure: %d pending; polling paused", m->pending);
		return;
	}
	poller_poll(m->poller, m->next_offset,
	    room < m->cfg->poll_limit ? room : m->cfg->poll_limit);
}

static int usable(const struct wslot *w)
{
	return w->state == W_READY && w->bev != NULL && !w->isolated && !w->reserved;
}

static struct wslot *least_loaded(struct master *m)
{
	struct wslot *best = NULL;

	for (int i = 0; i < m->nworkers; i++) {
		struct wslot *w = &m->w[i];

		if (!usable(w) || w->inflight >= m->cfg->worker_concurrency)
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

static struct upd *pop_retry(struct master *m)
{
	struct upd *u = m->retry_head;

	if (u != NULL) {
		m->retry_head = u->retry_next;
		if (m->retry_head == NULL)
			m->retry_tail = NULL;
		u->retry_next = NULL;
	}
	return u;
}

static int send_to(struct master *m, struct wslot *w, struct upd *u)
{
	if (workers_send_update(m, w, u) != 0)
		return -1;
	u->slot = w->slot;
	u->dispatched_ms = master_now_ms();
	w->inflight++;
	m->inflight++;
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

		for (int i = 0; i < m->nworkers; i++) {
			w = &m->w[i];
			if (w->state == W_READY && w->bev != NULL && !w->isolated &&
			    w->inflight == 0) {
				idle = w;
				break;
			}
		}
		if (idle == NULL) {
			for (int i = 0; i < m->nworkers; i++)
				if (m->w[i].reserved)
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

static void dispatch(struct master *m)
{
	struct wslot *w;
	struct upd *u;

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

void master_worker_ready(struct master *m, struct wslot *w)
{
	m->nready++;
	log_debug("worker %d (pid %ld) ready", w->slot, (long)w->pid);
	if (!m->started && m->nready == m->nworkers) {
		m->started = 1;
		log_notice("%d workers ready; polling %s as bot \"%s\"", m->nworkers,
		    m->cfg->api_url, m->cfg->name);
		notify_ready(&m->sd);
	}
	dispatch(m);
	maybe_poll(m);
}

void master_update_done(struct master *m, struct wslot *w, int64_t id,
    int status, uint32_t ms)
{
	struct upd *u = u64map_get(&m->upds, (uint64_t)id);

	if (u == NULL || u->slot != w->slot) {
		log_warn("worker %d: DONE for update %lld it was not running; ignored",
		    w->slot, (long long)id);
		return;
	}
	w->inflight--;
	m->inflight--;
	if (w->inflight == 0)
		w->isolated = 0;
	if (status == FRAME_ST_OK) {
		w->done++;
		m->n_done++;
	} else {
		w->failed++;
		m->n_failed++;
		log_info("update %lld (%s) failed in worker %d after %u ms",
		    (long long)id, keys_type_name(u->type), w->slot, ms);
	}
	finish(m, u);
	/*
	 * Without the journal, fetched updates are usually confirmed already
	 * (by the next getUpdates), so a stop finishes all of them.
	 */
	if (m->stopping && m->pending == 0) {
		begin_confirm(m);
		return;
	}
	dispatch(m);
	maybe_poll(m);
}

void master_worker_lost(struct master *m, struct wslot *w)
{
	struct upd *batch[64];
	size_t n;
	uint64_t key;

	/* Collect first: finish() edits the map being walked. */
	do {
		n = 0;
		for (size_t i = 0; i < m->upds.cap && n < 64; i++) {
			struct upd *u;

			if ((key = m->upds.keys[i]) == 0)
				continue;
			u = m->upds.vals[i];
			if (u->slot == w->slot)
				batch[n++] = u;
		}
		for (size_t i = 0; i < n; i++) {
			struct upd *u = batch[i];

			u->slot = -1;
			m->inflight--;
			if (u->attempt >= m->cfg->max_attempts) {
				log_err("update %lld (%s): dropped after %d attempts; its "
				    "worker died each time", (long long)u->id,
				    keys_type_name(u->type), u->attempt);
				m->n_dropped++;
				finish(m, u);
				continue;
			}
			u->attempt++;
			m->n_retried++;
			log_warn("update %lld: retrying (attempt %d) after worker %d died",
			    (long long)u->id, u->attempt, w->slot);
			/* It keeps its key slots, so per-chat order holds. */
			push_retry(m, u);
		}
	} while (n == 64);
	w->inflight = 0;
	w->isolated = w->reserved = 0;
	if (m->stopping && m->pending == 0)
		begin_confirm(m);
	else
		dispatch(m);
}

/* The lowest update id not finished, or the next offset: all below it are done. */
static int64_t confirm_offset(struct master *m)
{
	int64_t low = m->next_offset;

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
	/*
	 * Never confirm past an unfinished update: one not yet confirmed by a
	 * later getUpdates stays with the Bot API for the next start.
	 */
	off = confirm_offset(m);
	if (m->pending > 0)
		log_warn("%d fetched updates were not finished; confirming offset "
		    "%lld", m->pending, (long long)off);
	m->next_offset = off;
	poller_confirm(m->poller, off);
}

static void on_shutdown_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;

	log_warn("shutdown_timeout: %d updates still running, %d pending; "
	    "stopping the workers", m->inflight, m->pending);
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
	if (m->pending == 0)
		begin_confirm(m);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	log_warn("SIGHUP: reloading is not supported yet; ignored");
}

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
	int64_t now = master_now_ms();
	double secs = (double)(now - m->last_stats_ms) / 1000.0;
	double rate = secs > 0 ? (double)(m->n_done - m->n_done_last) / secs : 0.0;
	const char *polling = m->stopping ? "stopping" :
	    m->pending >= m->cfg->max_pending ? "paused" : "polling";

	if (m->n_done != m->n_done_last || m->inflight > 0)
		log_info("fetched %llu, done %llu, failed %llu, in flight %d, "
		    "pending %d, %.0f updates/s",
		    (unsigned long long)m->n_fetched, (unsigned long long)m->n_done,
		    (unsigned long long)m->n_failed, m->inflight, m->pending, rate);
	notify_status(&m->sd, "%s; in flight %d, pending %d, done %llu, failed %llu, "
	    "dropped %llu, %.0f updates/s", polling, m->inflight, m->pending,
	    (unsigned long long)m->n_done, (unsigned long long)m->n_failed,
	    (unsigned long long)m->n_dropped, rate);
	m->n_done_last = m->n_done;
	m->last_stats_ms = now;
}

void master_exit(struct master *m, int status)
{
	if (status > m->exit_status)
		m->exit_status = status;
	if (status != EXIT_OK)
		workers_kill_all(m, SIGKILL);
	event_base_loopbreak(m->base);
}

/* Runs only while the loop turns: a wedged master stops feeding systemd. */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;

	notify_watchdog(&m->sd);
}

static struct event *add_signal(struct master *m, int sig, event_callback_fn cb)
{
	struct event *ev = evsignal_new(m->base, sig, cb, m);

	if (ev == NULL || event_add(ev, NULL) != 0)
		fatalx("cannot watch signal %d", sig);
	return ev;
}

static void wait_children(struct master *m, int64_t grace_ms)
{
	int64_t end = master_now_ms() + grace_ms;

	/* The loop has stopped: reap synchronously, then force. */
	while (workers_alive(m) > 0 && master_now_ms() < end) {
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

int master_run(struct config *cfg, const char *token)
{
	struct master m;
	struct poller_cbs cbs = { on_batch, on_rejected, on_confirmed, &m };
	struct timeval tv = { STATS_INTERVAL_S, 0 };
	int status;

	memset(&m, 0, sizeof(m));
	m.cfg = cfg;
	m.token = token;
	m.nworkers = cfg->worker_count;
	u64map_init(&m.upds);
	signal(SIGPIPE, SIG_IGN);
	m.worker_path = workers_find_binary();
	m.base = event_base_new();
	m.ec = m.base ? evcurl_new(m.base) : NULL;
	m.seq = seq_new();
	if (m.worker_path == NULL || m.ec == NULL || m.seq == NULL)
		fatalx("cannot set up the event loop");
	m.poller = poller_new(m.base, m.ec, cfg, token, &cbs);
	if (m.poller == NULL)
		fatalx("cannot set up the poller");
	m.sig_term = add_signal(&m, SIGTERM, on_stop_signal);
	m.sig_int = add_signal(&m, SIGINT, on_stop_signal);
	m.sig_hup = add_signal(&m, SIGHUP, on_hup);
	m.sig_chld = add_signal(&m, SIGCHLD, on_chld);
	m.stats_ev = event_new(m.base, -1, EV_PERSIST, on_stats, &m);
	event_add(m.stats_ev, &tv);
	m.last_stats_ms = master_now_ms();
	notify_init(&m.sd);
	if (notify_watchdog_interval_usec(&m.sd) > 0) {
		uint64_t half = notify_watchdog_interval_usec(&m.sd) / 2;
		struct timeval wtv = { (time_t)(half / 1000000), (suseconds_t)(half % 1000000) };

		m.watchdog_ev = event_new(m.base, -1, EV_PERSIST, on_watchdog, &m);
		if (m.watchdog_ev == NULL || event_add(m.watchdog_ev, &wtv) != 0)
			fatalx("cannot start the watchdog timer");
	}

	log_info("starting %d workers (%s)", m.nworkers, cfg->handler);
	if (workers_start(&m) != 0)
		fatalx("cannot allocate worker slots");
	event_base_dispatch(m.base);

	status = m.exit_status;
	wait_children(&m, m.stopping ? DRAIN_GRACE_MS : 0);
	if (status == EXIT_OK)
		log_notice("stopped: fetched %llu, done %llu, failed %llu",
		    (unsigned long long)m.n_fetched, (unsigned long long)m.n_done,
		    (unsigned long long)m.n_failed);

	poller_free(m.poller);
	workers_free(&m);
	for (size_t i = 0; i < m.upds.cap; i++)
		if (m.upds.keys[i] != 0)
			upd_free(m.upds.vals[i]);
	u64map_free(&m.upds);
	seq_free(m.seq);
	evcurl_free(m.ec);
	event_free(m.sig_term);
	event_free(m.sig_int);
	event_free(m.sig_hup);
	event_free(m.sig_chld);
	event_free(m.stats_ev);
	if (m.watchdog_ev)
		event_free(m.watchdog_ev);
	if (m.shutdown_ev)
		event_free(m.shutdown_ev);
	event_base_free(m.base);
	free(m.worker_path);
	return status;
}
