/* Starting a worker process: find the binary, fork+exec, its settings, the shared throttle. */
#include "workers_int.h"
#include "clock.h"
#include "config.h"
#include "donelog.h"
#include "frame.h"
#include "log.h"
#include "notify.h"
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
#include <unistd.h>

#include <jansson.h>

#include <event2/buffer.h>

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

/*
 * A worker whose master died lets its updates run this long, as a stop
 * would (and never past update_timeout), then cancels them.
 */
static int64_t orphan_finish_ms(const struct config *c)
{
	return c->update_timeout_ms < c->shutdown_timeout_ms ? c->update_timeout_ms :
	    c->shutdown_timeout_ms;
}

int64_t workers_orphan_limit_ms(const struct config *cfg)
{
	return donelog_orphan_limit_ms(orphan_finish_ms(cfg), cfg->kill_grace_ms);
}

json_t *workers_settings(const struct config *c, int slot, int gen, const char *token,
    int throttle, int done_log)
{
	json_t *kv = json_object();

	for (size_t i = 0; i < c->handler_nkv; i++)
		json_object_set_new(kv, c->handler_kv[i].key,
		    json_string(c->handler_kv[i].value));
	return json_pack("{s:i, s:i, s:i, s:s, s:s, s:s, s:I, s:i, s:I, s:o, "
	    "s:i, s:I, s:i, s:b, s:b, s:i, s:s?, s:s?, s:s?, s:b, s:I, s:I}",
	    "slot", slot, "count", c->worker_count, "generation", gen,
	    "handler", c->handler, "api_url", c->api_url, "token", token,
	    "api_timeout_ms", (json_int_t)c->api_timeout_ms,
	    "api_retries", c->api_retries,
	    "retry_after_max_ms", (json_int_t)c->api_retry_after_max_ms,
	    "handler_kv", kv,
	    "worker_concurrency", c->worker_concurrency,
	    "stack_size", (json_int_t)c->stack_size,
	    "log_level", c->log_level,
	    "throttle", throttle,
	    "retry_ambiguous", c->api_retry_ambiguous,
	    "http_version", c->api_http_version,
	    "ca_file", c->api_ca_file, "ca_path", c->api_ca_path,
	    "proxy", c->api_proxy,
	    "done_log", done_log,
	    "orphan_ms", (json_int_t)orphan_finish_ms(c),
	    "orphan_grace_ms", (json_int_t)c->kill_grace_ms);
}

static json_t *settings_json(struct workers *p, struct wslot *w)
{
	const struct config *c = cfg_of(p, w);

	/* spawn() hands it the memory on THROTTLE_FD, the done log on DONELOG_FD then. */
	return workers_settings(c, w->slot, w->gen, p->token,
	    c->throttle_enabled && p->throttle != NULL, p->done_fd >= 0);
}

void workers_on_respawn(evutil_socket_t fd, short what, void *arg)
{
	struct wslot *w = arg;

	if (!w->p->stopping && workers_spawn(w->p, w) != 0)
		log_err("worker %d: respawn failed; trying again later", w->slot);
}

void workers_schedule_respawn(struct wslot *w, int64_t ms)
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

int workers_spawn(struct workers *p, struct wslot *w)
{
	const struct config *c = cfg_of(p, w);
	int sv[2], rc;
	int tfd = c->throttle_enabled && p->throttle ? throttle_fd(p->throttle) : -1;
	int dfd = p->done_fd;
	pid_t pid, parent;
	char slotarg[16];
	json_t *set;
	char *text;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		log_err("worker %d: socketpair: %s", w->slot, strerror(errno));
		workers_schedule_respawn(w, 1000);
		return -1;
	}
	snprintf(slotarg, sizeof(slotarg), "%d", w->slot);
	parent = getpid();
	pid = fork();
	if (pid < 0) {
		log_err("worker %d: fork: %s", w->slot, strerror(errno));
		close(sv[0]);
		close(sv[1]);
		workers_schedule_respawn(w, 1000);
		return -1;
	}
	if (pid == 0) {
		/* Child: never touch the parent's loop or curl handles; exec. */
		char *argv[] = { "tgrun-worker", "--slot", slotarg, NULL };
		/* What crosses exec, each onto its fixed number. */
		int src[] = { sv[1], tfd, dfd };
		static const int dst[] = { FRAME_WORKER_FD, THROTTLE_FD, DONELOG_FD };
		enum { NFD = sizeof(dst) / sizeof(dst[0]), LAST_FD = DONELOG_FD };
		sigset_t none;

		_Static_assert(FRAME_WORKER_FD < THROTTLE_FD && THROTTLE_FD < DONELOG_FD,
		    "the inherited descriptors are 3, 4, 5 in this order");
		/* Until the worker says otherwise (done log): it dies with the master. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);	/* the master died before prctl took effect */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		notify_scrub_env();
		/* Sources out of the way of the fixed numbers, so no dup2() clobbers one. */
		for (size_t i = 0; i < NFD; i++)
			if (src[i] >= 0 && src[i] <= LAST_FD &&
			    (src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, LAST_FD + 1)) < 0)
				_exit(127);
		/* dup2() clears close-on-exec; a number with nothing to carry is closed. */
		for (size_t i = 0; i < NFD; i++) {
			if (src[i] < 0)
				(void)close(dst[i]);
			else if (dup2(src[i], dst[i]) < 0)
				_exit(127);
		}
		/*
		 * Nothing else crosses exec: libcurl's sockets (the live getUpdates
		 * connection, its wake-up pair) are not close-on-exec.
		 */
		if (close_range(LAST_FD + 1, ~0U, 0) != 0)
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
	w->conn = fconn_new(p->base, sv[0], workers_on_conn, w);
	if (w->conn == NULL) {
		close(sv[0]);
		kill(pid, SIGKILL);
		return 0;	/* reaped and respawned like any dead worker */
	}
	set = settings_json(p, w);
	text = set ? json_dumps(set, JSON_COMPACT) : NULL;
	json_decref(set);
	rc = text ? workers_send_frame(w, FRAME_CONFIG, 0, 0, 0, text, strlen(text)) : -1;
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
