/* Worker processes: fork+exec, the READY handshake, frames, reaping and respawn. */
#include "master.h"
#include "frame.h"
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#ifndef TGRUN_LIBEXECDIR
#define TGRUN_LIBEXECDIR "/usr/local/libexec/tgrun"
#endif

#define RESPAWN_MIN_MS 200
#define RESPAWN_MAX_MS 10000
/* A worker that lived this long did not crash in a storm. */
#define RESPAWN_STABLE_MS 10000

static int spawn(struct master *m, struct wslot *w);

char *workers_find_binary(void)
{
	char self[PATH_MAX], *slash, *path = NULL;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash != NULL) {
			*slash = '\0';
			if (asprintf(&path, "%s/tgrun-worker", self) < 0)
				return NULL;
			if (access(path, X_OK) == 0)
				return path;
			free(path);
		}
	}
	return strdup(TGRUN_LIBEXECDIR "/tgrun-worker");
}

static json_t *settings_json(struct master *m, struct wslot *w)
{
	const struct config *c = m->cfg;
	json_t *kv = json_object();

	for (size_t i = 0; i < c->handler_nkv; i++)
		json_object_set_new(kv, c->handler_kv[i].key,
		    json_string(c->handler_kv[i].value));
	return json_pack("{s:i, s:i, s:i, s:s, s:s, s:s, s:I, s:i, s:I, s:o, "
	    "s:i, s:I, s:i}",
	    "slot", w->slot, "count", m->nworkers, "generation", 1,
	    "handler", c->handler, "api_url", c->api_url, "token", m->token,
	    "api_timeout_ms", (json_int_t)c->api_timeout_ms,
	    "api_retries", c->api_retries,
	    "retry_after_max_ms", (json_int_t)c->api_retry_after_max_ms,
	    "handler_kv", kv,
	    "worker_concurrency", c->worker_concurrency,
	    "stack_size", (json_int_t)c->stack_size,
	    "log_level", c->log_level);
}

static void drop_conn(struct wslot *w)
{
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

static void on_fail_frame(struct master *m, struct wslot *w, const struct frame *f)
{
	log_err("worker %d: start-up failed: %.*s", w->slot, (int)f->len, f->payload);
	/* A handler that will not load or init will not after a restart either. */
	master_exit(m, EXIT_CONFIG);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct wslot *w = arg;
	struct master *m = w->m;
	struct evbuffer *in = bufferevent_get_input(bev);
	const char *why = NULL;
	struct frame f;
	int r;

	while (w->bev != NULL && (r = frame_read(in, &f, &why)) == 1) {
		switch (f.type) {
		case FRAME_READY:
			if (w->state != W_STARTING) {
				protocol_error(w, "READY twice");
				return;
			}
			w->state = W_READY;
			master_worker_ready(m, w);
			break;
		case FRAME_DONE:
			if (w->state != W_READY && w->state != W_DRAINING) {
				protocol_error(w, "DONE before READY");
				return;
			}
			master_update_done(m, w, (int64_t)f.seq, f.flags, f.arg);
			break;
		case FRAME_FAIL:
			on_fail_frame(m, w, &f);
			return;
		case FRAME_PONG:
		case FRAME_STATS:
			break;
		default:
			protocol_error(w, "unexpected frame type from a worker");
			return;
		}
		frame_consume(in, &f);
	}
	if (w->bev != NULL && r < 0)
		protocol_error(w, why);
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

	if (!w->m->stopping && spawn(w->m, w) != 0)
		log_err("worker %d: respawn failed; trying again later", w->slot);
}

static int spawn(struct master *m, struct wslot *w)
{
	int sv[2];
	pid_t pid, parent;
	char slotarg[16];
	json_t *set;
	char *text;
	int rc;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		log_err("worker %d: socketpair: %s", w->slot, strerror(errno));
		goto retry;
	}
	snprintf(slotarg, sizeof(slotarg), "%d", w->slot);
	parent = getpid();
	pid = fork();
	if (pid < 0) {
		log_err("worker %d: fork: %s", w->slot, strerror(errno));
		close(sv[0]);
		close(sv[1]);
		goto retry;
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
		if (dup2(sv[1], FRAME_WORKER_FD) < 0)
			_exit(127);
		execv(m->worker_path, argv);
		dprintf(STDERR_FILENO, "tgrun-worker: exec %s: %s\n",
		    m->worker_path, strerror(errno));
		_exit(127);
	}
	close(sv[1]);
	evutil_make_socket_nonblocking(sv[0]);
	w->pid = pid;
	w->state = W_STARTING;
	w->inflight = 0;
	w->started_ms = master_now_ms();
	w->bev = bufferevent_socket_new(m->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	if (w->bev == NULL) {
		close(sv[0]);
		kill(pid, SIGKILL);
		return 0;	/* reaped and respawned like any dead worker */
	}
	bufferevent_setcb(w->bev, on_read, NULL, on_event, w);
	bufferevent_enable(w->bev, EV_READ | EV_WRITE);
	set = settings_json(m, w);
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
	log_debug("worker %d: started, pid %ld", w->slot, (long)pid);
	return 0;
retry:
	{
		struct timeval tv = { 1, 0 };

		evtimer_add(w->respawn_ev, &tv);
	}
	return -1;
}

int workers_start(struct master *m)
{
	m->w = calloc((size_t)m->nworkers, sizeof(*m->w));
	if (m->w == NULL)
		return -1;
	for (int i = 0; i < m->nworkers; i++) {
		struct wslot *w = &m->w[i];

		w->slot = i;
		w->m = m;
		w->respawn_ev = evtimer_new(m->base, on_respawn, w);
		if (w->respawn_ev == NULL)
			return -1;
		(void)spawn(m, w);
	}
	return 0;
}

int workers_send_update(struct master *m, struct wslot *w, struct upd *u)
{
	if (w->bev == NULL)
		return -1;
	return frame_write(bufferevent_get_output(w->bev), FRAME_UPDATE, 0,
	    (uint64_t)u->id, (uint32_t)u->attempt, u->json, u->len);
}

void workers_drain(struct master *m)
{
	for (int i = 0; i < m->nworkers; i++) {
		struct wslot *w = &m->w[i];

		evtimer_del(w->respawn_ev);
		if (w->bev != NULL && w->state == W_READY) {
			if (frame_write(bufferevent_get_output(w->bev), FRAME_DRAIN,
			    0, 0, 0, NULL, 0) != 0)
				kill(w->pid, SIGKILL);
			w->state = W_DRAINING;
		} else if (w->pid > 0) {
			kill(w->pid, SIGKILL);
		}
	}
}

void workers_kill_all(struct master *m, int sig)
{
	for (int i = 0; i < m->nworkers; i++)
		if (m->w[i].pid > 0)
			kill(m->w[i].pid, sig);
}

int workers_alive(const struct master *m)
{
	int n = 0;

	for (int i = 0; i < m->nworkers; i++)
		n += m->w[i].pid > 0;
	return n;
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

static void worker_gone(struct master *m, struct wslot *w, int st)
{
	char how[96];
	int64_t lived = master_now_ms() - w->started_ms;
	int was = w->state;
	struct timeval tv;

	describe_exit(how, sizeof(how), st);
	drop_conn(w);
	w->pid = 0;
	w->state = W_EMPTY;
	if (was == W_READY || was == W_DRAINING)
		m->nready--;
	if (m->stopping && was == W_DRAINING && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		log_debug("worker %d: exited after draining", w->slot);
		return;
	}
	log_warn("worker %d %s after %lld ms", w->slot, how, (long long)lived);
	master_worker_lost(m, w);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 2) {
		log_err("worker %d: its configuration or handler is unusable; stopping",
		    w->slot);
		master_exit(m, EXIT_CONFIG);
		return;
	}
	if (m->stopping)
		return;
	if (lived >= RESPAWN_STABLE_MS)
		w->backoff_ms = 0;
	w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : RESPAWN_MIN_MS;
	if (w->backoff_ms > RESPAWN_MAX_MS)
		w->backoff_ms = RESPAWN_MAX_MS;
	if (w->backoff_ms > RESPAWN_MIN_MS)
		log_warn("worker %d: crashing repeatedly; respawn in %lld ms (backoff)",
		    w->slot, (long long)w->backoff_ms);
	tv.tv_sec = w->backoff_ms / 1000;
	tv.tv_usec = (w->backoff_ms % 1000) * 1000;
	evtimer_add(w->respawn_ev, &tv);
}

void workers_reap(struct master *m)
{
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (int i = 0; i < m->nworkers; i++) {
			if (m->w[i].pid == pid) {
				worker_gone(m, &m->w[i], st);
				break;
			}
		}
	}
}

void workers_free(struct master *m)
{
	if (m->w == NULL)
		return;
	for (int i = 0; i < m->nworkers; i++) {
		drop_conn(&m->w[i]);
		if (m->w[i].respawn_ev != NULL)
			event_free(m->w[i].respawn_ev);
	}
	free(m->w);
	m->w = NULL;
}
