/* The master's life cycle: stop (drain, confirm, exit) and reload (worker generations). */
#include "master.h"
#include "master_cluster.h"
#include "botapi.h"
#include "dispatch.h"
#include "log.h"
#include "poller.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

static void start_reload(struct master *m);

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;

	log_warn("workers did not exit within %d ms of DRAIN; killing them",
	    DRAIN_GRACE_MS);
	workers_kill_all(m->pool, SIGKILL);
	master_exit(m, m->exit_status);
}

void master_on_confirmed(void *arg, int ok)
{
	struct master *m = arg;
	struct timeval tv = { DRAIN_GRACE_MS / 1000, (DRAIN_GRACE_MS % 1000) * 1000 };

	if (ok)
		log_info("offset %lld confirmed", (long long)m->next_offset);
	workers_drain(m->pool);
	if (workers_alive(m->pool) == 0) {
		master_exit(m, EXIT_OK);
		return;
	}
	m->drain_ev = evtimer_new(m->base, on_drain_timeout, m);
	if (m->drain_ev == NULL || evtimer_add(m->drain_ev, &tv) != 0)
		fatalx("cannot start the drain timer");
}

/* ---- stop ------------------------------------------------------------------------ */

/* The lowest update id not finished, or the next offset. */
static int64_t confirm_offset(struct master *m)
{
	int64_t low = m->next_offset;

	/* Journaled updates survive in the journal: everything fetched may go. */
	if (m->store != NULL)
		return low;
	size_t it = 0;

	for (struct upd *u; (u = pending_walk(m->pend, &it)) != NULL;)
		if (u->id < low)
			low = u->id;
	return low;
}

void master_begin_confirm(struct master *m)
{
	int64_t off;

	if (m->shutdown_ev == NULL)
		return;		/* confirming already */
	event_free(m->shutdown_ev);
	m->shutdown_ev = NULL;
	if (m->next_offset == 0) {
		master_on_confirmed(m, 0);
		return;
	}
	off = confirm_offset(m);
	if (master_pending(m) > 0)
		log_notice("%d fetched updates not finished %s; confirming offset %lld",
		    master_pending(m), m->store ? "stay in the journal" : "are lost",
		    (long long)off);
	m->next_offset = off;
	poller_confirm(m->poller, off);
}

static void on_shutdown_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;
	struct timeval tv = { m->cfg->kill_grace_ms / 1000,
	    (m->cfg->kill_grace_ms % 1000) * 1000 };

	if (!m->stop_cancelled && master_inflight(m) > 0) {
		/* First cancel: fibers see it in their next yielding call. */
		m->stop_cancelled = 1;
		log_warn("shutdown_timeout: cancelling %d updates still running",
		    master_inflight(m));
		dispatch_cancel_all(m->dsp);
		evtimer_add(m->shutdown_ev, &tv);
		return;
	}
	log_warn("shutdown: %d updates did not end; killing their workers",
	    master_inflight(m));
	workers_kill_all(m->pool, SIGKILL);
	master_begin_confirm(m);
}

void master_on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	struct master *m = arg;
	struct timeval tv;

	if (m->stopping) {
		log_warn("second %s: stopping now", strsignal((int)sig));
		workers_kill_all(m->pool, SIGKILL);
		master_exit(m, EXIT_OK);
		return;
	}
	m->stopping = 1;
	workers_set_stopping(m->pool);
	notify_stopping(&m->sd);
	log_notice("%s: stopping; %d updates in flight, %d pending",
	    strsignal((int)sig), master_inflight(m), master_pending(m));
	poller_stop(m->poller);
	if (m->mc != NULL)
		master_cluster_stop(m);
	tv.tv_sec = m->cfg->shutdown_timeout_ms / 1000;
	tv.tv_usec = (m->cfg->shutdown_timeout_ms % 1000) * 1000;
	m->shutdown_ev = evtimer_new(m->base, on_shutdown_timeout, m);
	if (m->shutdown_ev == NULL)
		fatalx("evtimer_new failed");
	evtimer_add(m->shutdown_ev, &tv);
	if (master_inflight(m) == 0 && (m->store != NULL || master_pending(m) == 0))
		master_begin_confirm(m);
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
	if (workers_throttle_prepare(m->pool, c) != 0) {
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
	if (workers_start(m->pool, c, m->reload_gen) != 0)
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

void master_generation_ready(void *arg, int gen)
{
	struct master *m = arg;
	struct config *old;
	int old_gen = m->gen;

	if (gen == m->gen && !m->started) {
		/* The first generation: start polling. */
		m->started = 1;
		log_notice("%d workers ready; polling %s as bot \"%s\"",
		    m->cfg->worker_count, m->cfg->api_url, m->cfg->name);
		notify_ready(&m->sd);
		if (m->mc != NULL)
			master_cluster_started(m);
		master_dispatch(m);
		master_maybe_poll(m);
		return;
	}
	if (!m->reloading || gen != m->reload_gen || m->next_cfg == NULL)
		return;
	old = m->cfg;
	/* Keep what cannot change while running. */
	master_cluster_keep_config(old, m->next_cfg);
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
	workers_throttle_apply(m->pool, m->cfg);
	master_apply_config(m);
	workers_serve(m->pool, gen, m->cfg);
	config_free(old);
	workers_foreach_ready(m->pool, gen, master_add_peer);
	log_notice("reload done: generation %d serves (%s); generation %d drains",
	    gen, m->cfg->handler, old_gen);
	reload_finished(m);
	master_dispatch(m);
	master_maybe_poll(m);
}

void master_generation_failed(void *arg, int gen, const char *why)
{
	struct master *m = arg;

	if (!m->reloading || gen != m->reload_gen)
		return;
	log_err("reload refused: the new workers failed to start (%s); generation "
	    "%d keeps serving", why, m->gen);
	workers_abandon(m->pool, gen);
	config_free(m->next_cfg);
	m->next_cfg = NULL;
	reload_finished(m);
}

void master_on_hup(evutil_socket_t sig, short what, void *arg)
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

