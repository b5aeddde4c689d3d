/* The worker pool: generations, slots, drain and recycle, heartbeats, reaping and respawn. */
#include "workers_int.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "status.h"
#include "throttle.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "frame.h"

#define RESPAWN_MIN_MS 200
#define RESPAWN_MAX_MS 10000
/* A worker that lived this long did not crash in a storm. */
#define RESPAWN_STABLE_MS 10000

struct workers *workers_new(struct event_base *base, const char *token,
    const struct workers_cbs *cbs, void *arg)
{
	struct workers *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	LIST_INIT(&p->list);
	if ((p->path = workers_find_binary()) == NULL) {
		free(p);
		return NULL;
	}
	p->base = base;
	p->token = token;
	p->cbs = *cbs;
	p->arg = arg;
	p->rng = (uint64_t)clock_ms() * 2654435761u + (uint64_t)getpid();
	p->done_fd = -1;
	return p;
}

void *workers_udata(const struct wslot *w)
{
	return w->udata;
}

void workers_set_udata(struct wslot *w, void *udata)
{
	w->udata = udata;
}

int workers_slot(const struct wslot *w)
{
	return w->slot;
}

void workers_foreach_ready(struct workers *p, int gen,
    void (*fn)(void *arg, struct wslot *w))
{
	for (struct wslot *w = LIST_FIRST(&p->list); w; w = LIST_NEXT(w, link))
		if (w->gen == gen && w->state == W_READY)
			fn(p->arg, w);
}

static const char *wstate_name(enum wstate s)
{
	switch (s) {
	case W_EMPTY: return "empty";
	case W_STARTING: return "starting";
	case W_READY: return "ready";
	case W_DRAINING: return "draining";
	}
	return "?";
}

size_t workers_rows(const struct workers *p, struct status_worker *rows, size_t n,
    int *ready)
{
	size_t i = 0;

	*ready = 0;
	for (const struct wslot *w = LIST_FIRST(&p->list); w; w = LIST_NEXT(w, link)) {
		*ready += w->gen == p->gen && w->state == W_READY;
		if (i >= n)
			continue;
		rows[i++] = (struct status_worker){
			.slot = w->slot, .gen = w->gen, .pid = w->pid,
			.state = wstate_name(w->state),
			.inflight = w->udata ? p->cbs.inflight_of(p->arg, w) : 0,
			.done = w->done, .failed = w->failed,
			.last_pong_ms = w->pid > 0 && w->state != W_STARTING ?
			    w->last_pong_ms : -1,
		};
	}
	return i;
}

size_t workers_count(const struct workers *p)
{
	size_t n = 0;

	for (const struct wslot *w = LIST_FIRST(&p->list); w; w = LIST_NEXT(w, link))
		n++;
	return n;
}

struct wslot *workers_find_ready(struct workers *p, int slot, pid_t *pid)
{
	for (struct wslot *w = LIST_FIRST(&p->list); w; w = LIST_NEXT(w, link)) {
		if (w->gen == p->gen && w->slot == slot && w->state == W_READY) {
			*pid = w->pid;
			return w;
		}
	}
	return NULL;
}

void workers_kill_one(struct wslot *w, int64_t id)
{
	if (w->pid <= 0)
		return;
	log_err("worker %d (pid %ld): update %lld did not end within kill_grace of "
	    "its cancel; killing the worker", w->slot, (long)w->pid, (long long)id);
	kill(w->pid, SIGKILL);
}

int workers_start(struct workers *p, const struct config *cfg, int gen)
{
	if (p->gen == 0) {
		p->gen = gen;
		p->cfg = cfg;
	} else {
		p->next_cfg = cfg;
	}
	p->starting_gen = gen;
	for (int i = 0; i < cfg->worker_count; i++) {
		struct wslot *w = calloc(1, sizeof(*w));

		if (w == NULL)
			return -1;
		w->slot = i;
		w->gen = gen;
		w->p = p;
		w->respawn_ev = evtimer_new(p->base, workers_on_respawn, w);
		if (w->respawn_ev == NULL) {
			free(w);
			return -1;
		}
		LIST_INSERT_HEAD(&p->list, w, link);
		(void)workers_spawn(p, w);
	}
	return 0;
}

static void drain_one(struct wslot *w)
{
	evtimer_del(w->respawn_ev);
	if (w->state == W_READY)
		w->p->cbs.worker_closed(w->p->arg, w);
	if (w->conn != NULL && w->state == W_READY) {
		if (workers_send_frame(w, FRAME_DRAIN, 0, 0, 0,
		    NULL, 0) != 0)
			kill(w->pid, SIGKILL);
		w->state = W_DRAINING;
	} else if (w->pid > 0 && w->state != W_DRAINING) {
		kill(w->pid, SIGKILL);
	}
}

void workers_drain(struct workers *p)
{
	for (struct wslot *w = LIST_FIRST(&p->list); w; w = LIST_NEXT(w, link))
		drain_one(w);
}

static void drain_generation(struct workers *p, int gen)
{
	for (struct wslot *w = LIST_FIRST(&p->list); w; w = LIST_NEXT(w, link))
		if (w->gen == gen)
			drain_one(w);
}

static void kill_generation(struct workers *p, int gen)
{
	for (struct wslot *w = LIST_FIRST(&p->list); w; w = LIST_NEXT(w, link)) {
		if (w->gen != gen)
			continue;
		evtimer_del(w->respawn_ev);
		workers_drop_conn(w);
		if (w->pid > 0)
			kill(w->pid, SIGKILL);
		w->state = W_EMPTY;
	}
}

void workers_recycle(struct wslot *w)
{
	log_info("worker %d: %llu updates handled; recycling it ([workers] "
	    "max_updates)", w->slot, (unsigned long long)(w->done + w->failed));
	w->recycling = 1;
	drain_one(w);
}

void workers_kill_all(struct workers *p, int sig)
{
	for (struct wslot *w = LIST_FIRST(&p->list); w; w = LIST_NEXT(w, link))
		if (w->pid > 0)
			kill(w->pid, sig);
}

int workers_alive(const struct workers *p)
{
	int n = 0;

	for (const struct wslot *w = LIST_FIRST(&p->list); w; w = LIST_NEXT(w, link))
		n += w->pid > 0;
	return n;
}

void workers_heartbeat(struct workers *p)
{
	int64_t now = clock_ms(), limit = p->cfg->heartbeat_timeout_ms;

	for (struct wslot *w = LIST_FIRST(&p->list); w; w = LIST_NEXT(w, link)) {
		if ((w->state != W_READY && w->state != W_DRAINING) || w->conn == NULL)
			continue;
		if (now - w->last_pong_ms > limit) {
			log_err("worker %d (pid %ld): no heartbeat for %lld ms (its loop "
			    "is stuck, e.g. a handler spinning without yielding); "
			    "killing it", w->slot, (long)w->pid,
			    (long long)(now - w->last_pong_ms));
			workers_drop_conn(w);
			kill(w->pid, SIGKILL);
			continue;
		}
		if (workers_send_frame(w, FRAME_PING, 0,
		    ++w->ping_seq, 0, NULL, 0) != 0)
			workers_protocol_error(w, "cannot queue PING");
	}
}

int workers_healthy(const struct workers *p)
{
	int64_t now = clock_ms();

	for (const struct wslot *w = LIST_FIRST(&p->list); w; w = LIST_NEXT(w, link))
		if (w->state == W_READY &&
		    now - w->last_pong_ms > p->cfg->heartbeat_timeout_ms / 2)
			return 0;
	return 1;
}

static void describe_exit(char *buf, size_t len, int st)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "killed by signal %d (%s)%s", WTERMSIG(st),
		    strsignal(WTERMSIG(st)), WCOREDUMP(st) ? ", core dumped" : "");
	else
		snprintf(buf, len, "stopped (status %#x)", st);
}

static void slot_free(struct workers *p, struct wslot *w)
{
	LIST_REMOVE(w, link);
	workers_drop_conn(w);
	event_free(w->respawn_ev);
	free(w);
}

static void worker_gone(struct workers *p, struct wslot *w, int st)
{
	char how[96];
	int64_t lived = clock_ms() - w->started_ms;
	int was = w->state, clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;

	describe_exit(how, sizeof(how), st);
	workers_read_last_frames(w);
	workers_drop_conn(w);
	w->pid = 0;
	w->state = W_EMPTY;
	if (was == W_DRAINING && clean)
		log_debug("worker %d (generation %d): exited after draining", w->slot, w->gen);
	else
		log_warn("worker %d %s after %lld ms", w->slot, how, (long long)lived);
	p->cbs.worker_lost(p->arg, w);

	if (w->gen < p->gen || p->stopping) {
		slot_free(p, w);	/* an old generation, or stopping: no respawn */
		return;
	}
	if (w->gen > p->gen) {
		/* A reload's worker died before its generation took over. */
		if (w->gen == p->starting_gen)
			p->cbs.generation_failed(p->arg, w->gen, how);
		slot_free(p, w);
		return;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == WORKER_EXIT_UNUSABLE) {
		log_err("worker %d: its configuration or handler is unusable; stopping",
		    w->slot);
		p->cbs.unusable(p->arg);
		return;
	}
	if (w->recycling && clean) {
		(void)workers_spawn(p, w);
		return;
	}
	if (lived >= RESPAWN_STABLE_MS)
		w->backoff_ms = 0;
	w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : RESPAWN_MIN_MS;
	if (w->backoff_ms > RESPAWN_MAX_MS)
		w->backoff_ms = RESPAWN_MAX_MS;
	if (w->backoff_ms > RESPAWN_MIN_MS)
		log_warn("worker %d: crashing repeatedly; respawn in %lld ms (backoff)",
		    w->slot, (long long)w->backoff_ms);
	workers_schedule_respawn(w, w->backoff_ms);
}

void workers_reap(struct workers *p)
{
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (struct wslot *w = LIST_FIRST(&p->list); w; w = LIST_NEXT(w, link)) {
			if (w->pid == pid) {
				worker_gone(p, w, st);
				break;
			}
		}
	}
}

void workers_free(struct workers *p)
{
	if (p == NULL)
		return;
	while (!LIST_EMPTY(&p->list))
		slot_free(p, LIST_FIRST(&p->list));
	throttle_close(p->throttle);
	free(p->path);
	free(p);
}

void workers_serve(struct workers *p, int gen, const struct config *cfg)
{
	int old = p->gen;

	p->gen = gen;
	p->cfg = cfg;
	p->next_cfg = NULL;
	drain_generation(p, old);
}

void workers_abandon(struct workers *p, int gen)
{
	kill_generation(p, gen);
	if (p->starting_gen == gen)
		p->starting_gen = 0;
	p->next_cfg = NULL;
}

void workers_set_stopping(struct workers *p)
{
	p->stopping = 1;
}

void workers_set_done_log(struct workers *p, int fd)
{
	p->done_fd = fd;
}

