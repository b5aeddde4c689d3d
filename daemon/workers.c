/* Worker processes: fork+exec, READY handshake, frames, heartbeats, reaping, respawn, generations. */
#include "workers.h"
#include "config.h"
#include "notify.h"
#include "clock.h"
#include "frame.h"
#include "log.h"
#include "status.h"
#include "throttle.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

enum wstate { W_EMPTY, W_STARTING, W_READY, W_DRAINING };

struct wslot {
	int slot;		/* 0..count-1 within its generation */
	int gen;
	enum wstate state;
	pid_t pid;
	struct bufferevent *bev;
	int recycling;		/* drained after max_updates; respawn when it exits */
	uint64_t done, failed;
	uint64_t recycle_at;	/* max_updates with jitter, 0 = never */
	int64_t started_ms;
	int64_t last_pong_ms;
	uint64_t ping_seq;
	int64_t backoff_ms;	/* crash-storm backoff for the next respawn */
	struct event *respawn_ev;
	void *udata;		/* the owner's (the master's dispatch peer) */
	struct workers *p;
	struct wslot *next;	/* in p->list */
};

/* The pool. */
struct workers {
	struct event_base *base;
	char *path;			/* tgrun-worker */
	const char *token;
	struct workers_cbs cbs;
	void *arg;
	struct wslot *list;		/* every generation */
	const struct config *cfg;	/* the serving generation's */
	const struct config *next_cfg;	/* the starting generation's, or NULL */
	int gen;			/* serving; 0 before the first start */
	int starting_gen;		/* started and not all READY yet; 0 if none */
	int stopping;			/* no respawn */
	uint64_t rng;
	struct throttle *throttle;	/* shared buckets, NULL until enabled */
};

#define RESPAWN_MIN_MS 200
#define RESPAWN_MAX_MS 10000
/* A worker that lived this long did not crash in a storm. */
#define RESPAWN_STABLE_MS 10000

static int spawn(struct workers *p, struct wslot *w);


struct workers *workers_new(struct event_base *base, const char *token,
    const struct workers_cbs *cbs, void *arg)
{
	struct workers *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	if ((p->path = workers_find_binary()) == NULL) {
		free(p);
		return NULL;
	}
	p->base = base;
	p->token = token;
	p->cbs = *cbs;
	p->arg = arg;
	p->rng = (uint64_t)clock_ms() * 2654435761u + (uint64_t)getpid();
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
	for (struct wslot *w = p->list; w; w = w->next)
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
	for (const struct wslot *w = p->list; w; w = w->next) {
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

	for (const struct wslot *w = p->list; w; w = w->next)
		n++;
	return n;
}

struct wslot *workers_find_ready(struct workers *p, int slot, pid_t *pid)
{
	for (struct wslot *w = p->list; w; w = w->next) {
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

/* Where tgrun-worker is: next to tgrund, else the libexec directory. */
char *workers_find_binary(void)
{
	static const char *const rel[] = { "tgrun-worker", "../libexec/tgrun/tgrun-worker" };
	char self[PATH_MAX], *slash, *path = NULL;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	/* Next to tgrund (the build tree), else where `make install` puts it. */
	if (n <= 0)
		return NULL;
	self[n] = '\0';
	if ((slash = strrchr(self, '/')) == NULL)
		return NULL;
	*slash = '\0';
	for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		if (asprintf(&path, "%s/%s", self, rel[i]) < 0)
			return NULL;
		if (access(path, X_OK) == 0)
			return path;
		free(path);
	}
	log_err("tgrun-worker not found next to tgrund or in ../libexec/tgrun");
	return NULL;
}

/* The config a worker runs with: a starting generation has the reloaded one. */
static const struct config *cfg_of(const struct workers *p, const struct wslot *w)
{
	return p->next_cfg != NULL && w->gen > p->gen ? p->next_cfg : p->cfg;
}

static json_t *settings_json(struct workers *p, struct wslot *w)
{
	const struct config *c = cfg_of(p, w);
	json_t *kv = json_object();

	for (size_t i = 0; i < c->handler_nkv; i++)
		json_object_set_new(kv, c->handler_kv[i].key,
		    json_string(c->handler_kv[i].value));
	return json_pack("{s:i, s:i, s:i, s:s, s:s, s:s, s:I, s:i, s:I, s:o, "
	    "s:i, s:I, s:i, s:b, s:b, s:i, s:s?, s:s?, s:s?}",
	    "slot", w->slot, "count", c->worker_count, "generation", w->gen,
	    "handler", c->handler, "api_url", c->api_url, "token", p->token,
	    "api_timeout_ms", (json_int_t)c->api_timeout_ms,
	    "api_retries", c->api_retries,
	    "retry_after_max_ms", (json_int_t)c->api_retry_after_max_ms,
	    "handler_kv", kv,
	    "worker_concurrency", c->worker_concurrency,
	    "stack_size", (json_int_t)c->stack_size,
	    "log_level", c->log_level,
	    /* spawn() hands it the memory on THROTTLE_FD then. */
	    "throttle", c->throttle_enabled && p->throttle != NULL,
	    "retry_ambiguous", c->api_retry_ambiguous,
	    "http_version", c->api_http_version,
	    "ca_file", c->api_ca_file, "ca_path", c->api_ca_path,
	    "proxy", c->api_proxy);
}

static void drop_conn(struct wslot *w)
{
	if (w->bev != NULL && w->state == W_READY)
		w->p->cbs.worker_closed(w->p->arg, w);	/* nothing can reach it now */
	if (w->bev != NULL) {
		bufferevent_free(w->bev);
		w->bev = NULL;
	}
}

static void protocol_error(struct wslot *w, const char *why)
{
	log_err("worker %d (pid %ld): protocol error: %s; killing it", w->slot,
	    (long)w->pid, why);
	drop_conn(w);
	if (w->pid > 0)
		kill(w->pid, SIGKILL);
}

static void on_fail_frame(struct workers *p, struct wslot *w, const struct frame *f)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "%.*s", (int)(f->len < 400 ? f->len : 400), f->payload);
	log_err("worker %d: start-up failed: %s", w->slot, msg);
	if (w->gen != p->gen) {
		if (w->gen == p->starting_gen)
			p->cbs.generation_failed(p->arg, w->gen, msg);
		return;
	}
	/* A handler that will not load or init will not after a restart either. */
	p->cbs.unusable(p->arg);
}

static void on_ready(struct workers *p, struct wslot *w)
{
	w->state = W_READY;
	w->last_pong_ms = clock_ms();
	if (w->gen == p->gen)
		p->cbs.worker_ready(p->arg, w);
	if (w->gen == p->starting_gen) {
		int all = 1;

		for (struct wslot *x = p->list; x; x = x->next)
			if (x->gen == w->gen && x->state != W_READY)
				all = 0;
		if (all) {
			p->starting_gen = 0;
			p->cbs.generation_ready(p->arg, w->gen);
		}
	}
}

static void handle_frames(struct wslot *w, struct evbuffer *in)
{
	struct workers *p = w->p;
	const char *why = NULL;
	struct frame f;
	int r = 0;

	while (w->bev != NULL && (r = frame_read(in, &f, &why)) == 1) {
		switch (f.type) {
		case FRAME_READY:
			if (w->state != W_STARTING) {
				protocol_error(w, "READY twice");
				return;
			}
			frame_consume(in, &f);
			on_ready(p, w);
			continue;
		case FRAME_DONE:
			if (w->state != W_READY && w->state != W_DRAINING) {
				protocol_error(w, "DONE before READY");
				return;
			}
			if (f.flags == FRAME_ST_OK)
				w->done++;
			else
				w->failed++;
			/* Drain it before the master can give it more work. */
			if (w->recycle_at && w->done + w->failed >= w->recycle_at &&
			    !w->recycling && !p->stopping && w->state == W_READY)
				workers_recycle(w);
			p->cbs.update_done(p->arg, w, (int64_t)f.seq, f.flags, f.arg);
			break;
		case FRAME_FAIL:
			on_fail_frame(p, w, &f);
			return;
		case FRAME_PONG:
			w->last_pong_ms = clock_ms();
			break;
		case FRAME_STATS:
			p->cbs.stats(p->arg, w, &f);
			break;
		default:
			protocol_error(w, "unexpected frame type from a worker");
			return;
		}
		if (w->bev != NULL)
			frame_consume(in, &f);
	}
	if (w->bev != NULL && r < 0)
		protocol_error(w, why);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	handle_frames(arg, bufferevent_get_input(bev));
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct wslot *w = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		/* The process is reaped on SIGCHLD; only the socket goes now. */
		drop_conn(w);
	}
}

static void on_respawn(evutil_socket_t fd, short what, void *arg)
{
	struct wslot *w = arg;

	if (!w->p->stopping && spawn(w->p, w) != 0)
		log_err("worker %d: respawn failed; trying again later", w->slot);
}

static void schedule_respawn(struct wslot *w, int64_t ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(w->respawn_ev, &tv);
}

static uint64_t next_rand(struct workers *p)
{
	p->rng ^= p->rng << 13;
	p->rng ^= p->rng >> 7;
	p->rng ^= p->rng << 17;
	return p->rng;
}

static int spawn(struct workers *p, struct wslot *w)
{
	const struct config *c = cfg_of(p, w);
	int sv[2], rc;
	int tfd = c->throttle_enabled && p->throttle ? throttle_fd(p->throttle) : -1;
	pid_t pid, parent;
	char slotarg[16];
	json_t *set;
	char *text;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		log_err("worker %d: socketpair: %s", w->slot, strerror(errno));
		schedule_respawn(w, 1000);
		return -1;
	}
	snprintf(slotarg, sizeof(slotarg), "%d", w->slot);
	parent = getpid();
	pid = fork();
	if (pid < 0) {
		log_err("worker %d: fork: %s", w->slot, strerror(errno));
		close(sv[0]);
		close(sv[1]);
		schedule_respawn(w, 1000);
		return -1;
	}
	if (pid == 0) {
		/* Child: never touch the parent's loop or curl handles; exec. */
		char *argv[] = { "tgrun-worker", "--slot", slotarg, NULL };
		sigset_t none;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);	/* the master died before prctl took effect */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		notify_scrub_env();
		/* The socket goes onto fd 3 first: move the memfd out of its way. */
		if (tfd == FRAME_WORKER_FD &&
		    (tfd = fcntl(tfd, F_DUPFD_CLOEXEC, THROTTLE_FD + 1)) < 0)
			_exit(127);
		if (dup2(sv[1], FRAME_WORKER_FD) < 0)
			_exit(127);
		/* dup2() clears close-on-exec, except onto the same fd. */
		if (tfd >= 0 && (tfd == THROTTLE_FD ? fcntl(tfd, F_SETFD, 0) :
		    dup2(tfd, THROTTLE_FD)) < 0)
			_exit(127);
		/*
		 * Nothing else crosses exec: libcurl's sockets (the live getUpdates
		 * connection, its wake-up pair) are not close-on-exec.
		 */
		if (close_range(tfd >= 0 ? THROTTLE_FD + 1 : FRAME_WORKER_FD + 1, ~0U, 0) != 0)
			_exit(127);
		execv(p->path, argv);
		dprintf(STDERR_FILENO, "tgrun-worker: exec %s: %s\n",
		    p->path, strerror(errno));
		_exit(127);
	}
	close(sv[1]);
	evutil_make_socket_nonblocking(sv[0]);
	w->pid = pid;
	w->state = W_STARTING;
	w->done = w->failed = 0;
	w->recycling = 0;
	w->recycle_at = c->max_updates > 0 ? (uint64_t)c->max_updates +
	    next_rand(p) % ((uint64_t)c->max_updates / 10 + 1) : 0;
	w->started_ms = clock_ms();
	w->last_pong_ms = w->started_ms;
	w->bev = bufferevent_socket_new(p->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	if (w->bev == NULL) {
		close(sv[0]);
		kill(pid, SIGKILL);
		return 0;	/* reaped and respawned like any dead worker */
	}
	bufferevent_setcb(w->bev, on_read, NULL, on_event, w);
	bufferevent_enable(w->bev, EV_READ | EV_WRITE);
	set = settings_json(p, w);
	text = set ? json_dumps(set, JSON_COMPACT) : NULL;
	json_decref(set);
	rc = text ? frame_write(bufferevent_get_output(w->bev), FRAME_CONFIG, 0, 0, 0,
	    text, strlen(text)) : -1;
	if (text != NULL) {
		explicit_bzero(text, strlen(text));
		free(text);
	}
	if (rc != 0) {
		log_err("worker %d: cannot send its settings", w->slot);
		kill(pid, SIGKILL);
	}
	log_debug("worker %d (generation %d): started, pid %ld", w->slot, w->gen,
	    (long)pid);
	return 0;
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
		w->respawn_ev = evtimer_new(p->base, on_respawn, w);
		if (w->respawn_ev == NULL) {
			free(w);
			return -1;
		}
		w->next = p->list;
		p->list = w;
		(void)spawn(p, w);
	}
	return 0;
}

int workers_send_update(struct wslot *w, int64_t id, int attempt, const char *json,
    size_t len)
{
	if (w->bev == NULL || w->state != W_READY)
		return -1;
	return frame_write(bufferevent_get_output(w->bev), FRAME_UPDATE, 0,
	    (uint64_t)id, (uint32_t)attempt, json, len);
}

int workers_send_cancel(struct wslot *w, int64_t id)
{
	if (w->bev == NULL)
		return -1;
	return frame_write(bufferevent_get_output(w->bev), FRAME_CANCEL, 0,
	    (uint64_t)id, 0, NULL, 0);
}

int workers_send_dump(struct wslot *w, uint64_t req)
{
	if (w->bev == NULL || (w->state != W_READY && w->state != W_DRAINING))
		return -1;
	return frame_write(bufferevent_get_output(w->bev), FRAME_DUMP, 0, req, 0,
	    NULL, 0);
}

static void drain_one(struct wslot *w)
{
	evtimer_del(w->respawn_ev);
	if (w->state == W_READY)
		w->p->cbs.worker_closed(w->p->arg, w);
	if (w->bev != NULL && w->state == W_READY) {
		if (frame_write(bufferevent_get_output(w->bev), FRAME_DRAIN, 0, 0, 0,
		    NULL, 0) != 0)
			kill(w->pid, SIGKILL);
		w->state = W_DRAINING;
	} else if (w->pid > 0 && w->state != W_DRAINING) {
		kill(w->pid, SIGKILL);
	}
}

void workers_drain(struct workers *p)
{
	for (struct wslot *w = p->list; w; w = w->next)
		drain_one(w);
}

static void drain_generation(struct workers *p, int gen)
{
	for (struct wslot *w = p->list; w; w = w->next)
		if (w->gen == gen)
			drain_one(w);
}

static void kill_generation(struct workers *p, int gen)
{
	for (struct wslot *w = p->list; w; w = w->next) {
		if (w->gen != gen)
			continue;
		evtimer_del(w->respawn_ev);
		drop_conn(w);
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
	for (struct wslot *w = p->list; w; w = w->next)
		if (w->pid > 0)
			kill(w->pid, sig);
}

int workers_alive(const struct workers *p)
{
	int n = 0;

	for (const struct wslot *w = p->list; w; w = w->next)
		n += w->pid > 0;
	return n;
}

void workers_heartbeat(struct workers *p)
{
	int64_t now = clock_ms(), limit = p->cfg->heartbeat_timeout_ms;

	for (struct wslot *w = p->list; w; w = w->next) {
		if ((w->state != W_READY && w->state != W_DRAINING) || w->bev == NULL)
			continue;
		if (now - w->last_pong_ms > limit) {
			log_err("worker %d (pid %ld): no heartbeat for %lld ms (its loop "
			    "is stuck, e.g. a handler spinning without yielding); "
			    "killing it", w->slot, (long)w->pid,
			    (long long)(now - w->last_pong_ms));
			drop_conn(w);
			kill(w->pid, SIGKILL);
			continue;
		}
		if (frame_write(bufferevent_get_output(w->bev), FRAME_PING, 0,
		    ++w->ping_seq, 0, NULL, 0) != 0)
			protocol_error(w, "cannot queue PING");
	}
}

int workers_healthy(const struct workers *p)
{
	int64_t now = clock_ms();

	for (const struct wslot *w = p->list; w; w = w->next)
		if (w->state == W_READY && now - w->last_pong_ms > p->cfg->heartbeat_timeout_ms)
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
	struct wslot **pp;

	for (pp = &p->list; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	drop_conn(w);
	event_free(w->respawn_ev);
	free(w);
}

/*
 * SIGCHLD may be seen before the socket's last bytes: read and handle them
 * first, or DONE frames of a worker that exited cleanly would be lost and
 * its finished updates retried.
 */
static void read_last_frames(struct wslot *w)
{
	struct evbuffer *rest;
	evutil_socket_t fd;

	if (w->bev == NULL || (rest = evbuffer_new()) == NULL)
		return;
	/* The bufferevent's input only takes bytes from the bufferevent: copy. */
	evbuffer_remove_buffer(bufferevent_get_input(w->bev), rest,
	    evbuffer_get_length(bufferevent_get_input(w->bev)));
	fd = bufferevent_getfd(w->bev);
	while (fd >= 0 && evbuffer_read(rest, fd, 65536) > 0)
		;
	handle_frames(w, rest);
	evbuffer_free(rest);
}

static void worker_gone(struct workers *p, struct wslot *w, int st)
{
	char how[96];
	int64_t lived = clock_ms() - w->started_ms;
	int was = w->state, clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;

	describe_exit(how, sizeof(how), st);
	read_last_frames(w);
	drop_conn(w);
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
		(void)spawn(p, w);
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
	schedule_respawn(w, w->backoff_ms);
}

void workers_reap(struct workers *p)
{
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (struct wslot *w = p->list; w; w = w->next) {
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
	while (p->list != NULL)
		slot_free(p, p->list);
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

static void throttle_rates_of(const struct config *c, struct throttle_rates *r)
{
	r->global = (struct throttle_rate){ c->throttle_global.n,
	    c->throttle_global.period_ms * 1000 };
	r->chat = (struct throttle_rate){ c->throttle_chat.n,
	    c->throttle_chat.period_ms * 1000 };
	r->group = (struct throttle_rate){ c->throttle_group.n,
	    c->throttle_group.period_ms * 1000 };
}

/* [throttle] periods are a second or a minute. */
static const char *per(int64_t period_us)
{
	return period_us == 60000000 ? "m" : "s";
}

int workers_throttle_prepare(struct workers *p, const struct config *cfg)
{
	struct throttle_rates r;

	if (!cfg->throttle_enabled || p->throttle != NULL)
		return 0;
	throttle_rates_of(cfg, &r);
	if ((p->throttle = throttle_create(&r)) == NULL) {
		log_err("[throttle]: cannot create the shared buckets: %s",
		    strerror(errno));
		return -1;
	}
	log_info("throttle: %lld/%s overall, %lld/%s per chat, %lld/%s per group, "
	    "shared by all workers", (long long)r.global.n, per(r.global.period_us),
	    (long long)r.chat.n, per(r.chat.period_us), (long long)r.group.n,
	    per(r.group.period_us));
	return 0;
}

void workers_throttle_apply(struct workers *p, const struct config *cfg)
{
	struct throttle_rates r;

	if (p->throttle == NULL || !cfg->throttle_enabled)
		return;
	throttle_rates_of(cfg, &r);
	if (throttle_set_rates(p->throttle, &r) != 0)
		log_err("throttle: cannot update the rates: %s", strerror(errno));
}
