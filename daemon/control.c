/* The control socket: line-based JSON requests from tgrunctl, one reply line each. */
#include "control.h"
#include "clock.h"
#include "journal.h"
#include "listener.h"
#include "log.h"
#include "status.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>

#define MAX_CLIENTS 32
/*
 * Replies queued for one client: past OUT_HIGH its next requests wait
 * (unread, so the kernel pushes back on it) until the output drains to
 * OUT_LOW. A client that writes without reading costs this much, not a
 * reply per request it sent.
 */
#define OUT_HIGH (256 * 1024)
#define OUT_LOW (64 * 1024)
/* A connection idle this long is closed. */
#define IDLE_S 60
/* How long a worker gets to answer a DUMP. */
#define DUMP_TIMEOUT_MS 3000

struct client {
	struct control *c;
	struct bufferevent *bev;
	uint64_t waiting;	/* DUMP request id this client waits for, 0 = none */
	int wslot;
	long wpid;
	struct event *timer;	/* bounds the wait for a DUMP */
	int eof;		/* the client sent all it will send */
	int closing;		/* free once the output is written */
	LIST_ENTRY(client) link;	/* in c->clients */
};

struct control {
	struct event_base *base;
	struct status_ops ops;
	struct listener *listener;
	struct log_rate refused;	/* log lines about refused connections */
	char *path;
	dev_t dev;
	ino_t ino;
	LIST_HEAD(, client) clients;
	int nclients;
	uint64_t next_req;
};

/* A reply object (ok is added) or NULL with *err set; *async: no reply now. */
typedef json_t *cmd_fn(struct client *cl, const struct control_req *req,
    const char **err, int *async);

static void process(struct client *cl);

/* ---- connections ------------------------------------------------------------ */

static void client_free(struct client *cl)
{
	struct control *c = cl->c;

	LIST_REMOVE(cl, link);
	c->nclients--;
	if (cl->timer)
		event_free(cl->timer);
	bufferevent_free(cl->bev);
	free(cl);
}

static void send_json(struct client *cl, json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	struct evbuffer *out = bufferevent_get_output(cl->bev);

	if (text == NULL) {
		evbuffer_add_printf(out, "{\"ok\":false,\"error\":\"out of memory\"}\n");
	} else {
		evbuffer_add(out, text, strlen(text));
		evbuffer_add(out, "\n", 1);
	}
	free(text);
	json_decref(j);
}

static void reply_ok(struct client *cl, json_t *j)
{
	if (j == NULL)
		j = json_object();
	if (j != NULL)
		json_object_set_new(j, "ok", json_true());
	send_json(cl, j);
}

static void reply_err(struct client *cl, const char *err)
{
	send_json(cl, json_pack("{s:b, s:s}", "ok", 0, "error", err));
}

static void close_after_write(struct client *cl)
{
	cl->closing = 1;
	bufferevent_disable(cl->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(cl->bev)) == 0)
		client_free(cl);
}

static void on_client_read(struct bufferevent *bev, void *arg)
{
	process(arg);
}

/* The output drained to OUT_LOW or below (the write low-water mark). */
static void on_client_write(struct bufferevent *bev, void *arg)
{
	struct client *cl = arg;

	if (cl->closing && cl->waiting == 0 &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		client_free(cl);
	else if (!cl->closing)
		process(cl);
}

static void on_client_event(struct bufferevent *bev, short what, void *arg)
{
	struct client *cl = arg;

	/*
	 * A client that shut down its side still gets the replies to every
	 * whole line it sent; process() closes after the last one.
	 */
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
		cl->eof = 1;
		process(cl);
		return;
	}
	client_free(cl);
}

/*
 * Past MAX_CLIENTS a connection is closed at once, so that tgrunctl says so
 * rather than waiting in the backlog; the log says it once a minute at most.
 */
static void on_accept(void *arg, evutil_socket_t fd)
{
	struct control *c = arg;
	struct timeval idle = { IDLE_S, 0 };
	struct client *cl;
	unsigned long held;

	if (c->nclients >= MAX_CLIENTS) {
		if (log_rate_pass(&c->refused, 60000, &held))
			log_warn("control: %d connections open; refusing more (%lu "
			    "refused since the last line like this)", c->nclients, held);
		close(fd);
		return;
	}
	if ((cl = calloc(1, sizeof(*cl))) == NULL ||
	    (cl->bev = bufferevent_socket_new(c->base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		log_warn("control: out of memory for a connection");
		free(cl);
		close(fd);
		return;
	}
	cl->c = c;
	LIST_INSERT_HEAD(&c->clients, cl, link);
	c->nclients++;
	bufferevent_setcb(cl->bev, on_client_read, on_client_write, on_client_event, cl);
	/* Stop reading well past one line: a longer one is refused anyway. */
	bufferevent_setwatermark(cl->bev, EV_READ, 0, 2 * CONTROL_MAX_LINE);
	bufferevent_setwatermark(cl->bev, EV_WRITE, OUT_LOW, 0);
	bufferevent_set_timeouts(cl->bev, &idle, &idle);
	bufferevent_enable(cl->bev, EV_READ | EV_WRITE);
}

/* ---- commands --------------------------------------------------------------- */

static json_t *stream_json(const struct status_stream *s)
{
	if (!s->known)
		return json_null();
	return json_pack("{s:I, s:I, s:I, s:I}", "messages", (json_int_t)s->messages,
	    "bytes", (json_int_t)s->bytes, "first_seq", (json_int_t)s->first_seq,
	    "last_seq", (json_int_t)s->last_seq);
}

/* The "cluster" object of status (cluster mode only). */
static json_t *cluster_json(const struct status_cluster *sc)
{
	json_t *nodes = json_array();

	for (size_t i = 0; nodes && i < sc->nnodes; i++) {
		const struct status_node *n = &sc->nodes[i];

		json_array_append_new(nodes, json_pack("{s:s, s:s, s:i, s:i, s:I}",
		    "node", n->node, "role", n->role, "capacity", n->capacity,
		    "in_flight", n->in_flight, "age_ms", (json_int_t)n->age_ms));
	}
	return json_pack("{s:s, s:s, s:o, s:I, s:o, s:{s:o, s:o}, s:I, s:I, s:i}",
	    "node", sc->node, "role", sc->role,
	    "leader", sc->leader ? json_string(sc->leader) : json_null(),
	    "epoch", (json_int_t)sc->epoch, "nodes", nodes ? nodes : json_array(),
	    "streams", "journal", stream_json(&sc->journal), "work", stream_json(&sc->work),
	    "pulled", (json_int_t)sc->pulled, "ran", (json_int_t)sc->ran,
	    "released_out", sc->released_out);
}

static json_t *cmd_status(struct client *cl, const struct control_req *req,
    const char **err, int *async)
{
	struct control *c = cl->c;
	struct status st;
	int64_t now = clock_ms();
	json_t *j, *jr;

	c->ops.snapshot(c->ops.arg, &st);
	jr = json_pack("{s:b, s:s, s:I}", "enabled", st.journal_enabled, "path",
	    st.journal_path, "bytes", (json_int_t)st.journal_bytes);
	j = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:I, "
	    "s:I, s:f, s:o, s:o, s:s, s:i}",
	    "state", st.polling,
	    "generation", st.generation,
	    "workers", st.workers_ready,
	    "worker_count", st.worker_count,
	    "in_flight", st.inflight,
	    "pending", st.pending,
	    "fetched", (json_int_t)st.fetched,
	    "done", (json_int_t)st.done,
	    "failed", (json_int_t)st.failed,
	    "retried", (json_int_t)st.retried,
	    "dead_lettered", (json_int_t)st.dead_lettered,
	    "dead_letters", (json_int_t)st.dead_letters,
	    "timed_out", (json_int_t)st.timed_out,
	    "updates_per_sec", st.rate,
	    "since_last_poll_s", st.last_poll_ok_ms ?
		json_real((double)(now - st.last_poll_ok_ms) / 1000.0) : json_null(),
	    "journal", jr,
	    "bot", st.bot,
	    "pid", (int)getpid());
	if (j != NULL && st.cluster != NULL)
		json_object_set_new(j, "cluster", cluster_json(st.cluster));
	if (j == NULL)
		*err = "out of memory";
	return j;
}

/* Resident set size of `pid` from /proc/PID/statm, -1 if unknown. */
static int64_t rss_bytes(pid_t pid)
{
	char path[64];
	long pages, resident;
	FILE *f;
	int n;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/statm", (long)pid);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	n = fscanf(f, "%ld %ld", &pages, &resident);
	fclose(f);
	return n == 2 ? (int64_t)resident * sysconf(_SC_PAGESIZE) : -1;
}

static json_t *cmd_workers(struct client *cl, const struct control_req *req,
    const char **err, int *async)
{
	struct control *c = cl->c;
	struct status st;
	int64_t now = clock_ms();
	json_t *a = json_array();

	c->ops.snapshot(c->ops.arg, &st);
	for (size_t i = 0; a && i < st.nworkers; i++) {
		const struct status_worker *w = &st.workers[i];
		int64_t rss = rss_bytes(w->pid);

		json_array_append_new(a, json_pack("{s:i, s:i, s:i, s:s, s:i, s:I, s:I, "
		    "s:o, s:o}", "slot", w->slot, "pid", (int)w->pid, "generation", w->gen,
		    "state", w->state, "in_flight", w->inflight,
		    "done", (json_int_t)w->done, "failed", (json_int_t)w->failed,
		    "rss_bytes", rss >= 0 ? json_integer(rss) : json_null(),
		    "heartbeat_ms", w->last_pong_ms >= 0 ?
			json_integer(now - w->last_pong_ms) : json_null()));
	}
	if (a == NULL)
		*err = "out of memory";
	return a ? json_pack("{s:o}", "workers", a) : NULL;
}

static json_t *cmd_reload(struct client *cl, const struct control_req *req,
    const char **err, int *async)
{
	int r = cl->c->ops.reload(cl->c->ops.arg);

	if (r < 0) {
		*err = "the daemon is stopping";
		return NULL;
	}
	return json_pack("{s:s}", "reload", r == 0 ? "started" : "queued");
}

static json_t *set_paused(struct control *c, int paused)
{
	struct status st;

	c->ops.pause(c->ops.arg, paused);
	c->ops.snapshot(c->ops.arg, &st);
	return json_pack("{s:s}", "state", st.polling);
}

static json_t *cmd_pause(struct client *cl, const struct control_req *req,
    const char **err, int *async)
{
	return set_paused(cl->c, 1);
}

static json_t *cmd_resume(struct client *cl, const struct control_req *req,
    const char **err, int *async)
{
	return set_paused(cl->c, 0);
}

/* The update type of a raw update: its first key other than update_id. */
static json_t *dead_json(const struct store_dead *d, int with_body)
{
	json_t *body = json_loadb(d->body, d->len, 0, NULL), *o;
	const char *type = "unknown", *key;
	json_t *v;

	json_object_foreach(body, key, v) {
		if (strcmp(key, "update_id") != 0) {
			type = key;
			break;
		}
	}
	o = json_pack("{s:I, s:i, s:s, s:I, s:s}", "update_id",
	    (json_int_t)d->update_id, "attempts", d->attempts, "error", d->error,
	    "died_at", (json_int_t)d->died_at, "type", type);
	if (o != NULL && with_body)
		json_object_set_new(o, "update", body ? json_incref(body) :
		    json_stringn(d->body, d->len));
	json_decref(body);
	return o;
}

static int on_dead_list(void *arg, const struct store_dead *d)
{
	return json_array_append_new(arg, dead_json(d, 0)) == 0 ? 0 : -1;
}

static int on_dead_show(void *arg, const struct store_dead *d)
{
	*(json_t **)arg = dead_json(d, 1);
	return 0;
}

static json_t *cmd_dead(struct client *cl, const struct control_req *req,
    const char **err, int *async)
{
	const struct status_ops *ops = &cl->c->ops;
	int retry = req->action == CONTROL_DEAD_RETRY;
	json_t *j = NULL;
	int64_t n;

	if (req->action == CONTROL_DEAD_LIST) {
		json_t *a = json_array();

		if (a == NULL) {
			*err = "out of memory";
			return NULL;
		}
		if (ops->dead_list(ops->arg, on_dead_list, a, err) != 0) {
			json_decref(a);
			return NULL;
		}
		return json_pack("{s:o}", "dead_letters", a);
	}
	if (req->action == CONTROL_DEAD_SHOW) {
		n = ops->dead_show(ops->arg, req->id, on_dead_show, &j, err);
		if (n == 0)
			*err = "no such dead letter";
		return n == 1 && j ? json_pack("{s:o}", "dead_letter", j) : NULL;
	}
	n = retry ? ops->dead_retry(ops->arg, req->id, err) :
	    ops->dead_drop(ops->arg, req->id, err);
	if (n < 0)
		return NULL;
	if (n == 0 && req->id != STATUS_ALL) {
		*err = "no such dead letter";
		return NULL;
	}
	log_notice("control: %s %lld dead letter%s", retry ? "retrying" : "dropped",
	    (long long)n, n == 1 ? "" : "s");
	return json_pack("{s:I}", retry ? "retried" : "dropped", (json_int_t)n);
}

static void on_dump_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct client *cl = arg;
	char msg[96];

	snprintf(msg, sizeof(msg), "worker %d did not answer within %d ms", cl->wslot,
	    DUMP_TIMEOUT_MS);
	cl->waiting = 0;
	reply_err(cl, msg);
	process(cl);
}

static json_t *cmd_fibers(struct client *cl, const struct control_req *req,
    const char **err, int *async)
{
	struct control *c = cl->c;
	struct timeval tv = { DUMP_TIMEOUT_MS / 1000, (DUMP_TIMEOUT_MS % 1000) * 1000 };
	pid_t pid;

	if (cl->timer == NULL &&
	    (cl->timer = evtimer_new(c->base, on_dump_timeout, cl)) == NULL) {
		*err = "out of memory";
		return NULL;
	}
	if (c->ops.dump(c->ops.arg, req->worker, ++c->next_req, &pid, err) != 0)
		return NULL;
	cl->waiting = c->next_req;
	cl->wslot = req->worker;
	cl->wpid = (long)pid;
	evtimer_add(cl->timer, &tv);
	*async = 1;
	return NULL;
}

static cmd_fn *const cmds[] = {
	[CONTROL_STATUS] = cmd_status,
	[CONTROL_WORKERS] = cmd_workers,
	[CONTROL_RELOAD] = cmd_reload,
	[CONTROL_PAUSE] = cmd_pause,
	[CONTROL_RESUME] = cmd_resume,
	[CONTROL_DEAD_LETTERS] = cmd_dead,
	[CONTROL_FIBERS] = cmd_fibers,
};

void control_dump_answer(struct control *c, uint64_t req, const char *payload,
    size_t len)
{
	struct client *cl;
	json_t *a;

	if (c == NULL || req == 0)
		return;
	LIST_FOREACH(cl, &c->clients, link)
		if (cl->waiting == req)
			break;
	if (cl == NULL)
		return;		/* timed out, or the client went away */
	evtimer_del(cl->timer);
	cl->waiting = 0;
	a = json_loadb(payload, len, 0, NULL);
	if (!json_is_array(a)) {
		json_decref(a);
		reply_err(cl, "the worker sent a malformed fiber dump");
	} else {
		reply_ok(cl, json_pack("{s:i, s:i, s:o}", "worker", cl->wslot, "pid",
		    (int)cl->wpid, "fibers", a));
	}
	process(cl);
}

static void handle_line(struct client *cl, const char *line, size_t len)
{
	struct control_req req;
	const char *err = NULL;
	char msg[256];
	json_t *res;
	int async = 0;

	if (control_parse(line, len, &req, msg, sizeof(msg)) != 0) {
		reply_err(cl, msg);
		return;
	}
	res = cmds[req.cmd](cl, &req, &err, &async);
	if (async)
		return;
	if (res != NULL)
		reply_ok(cl, res);
	else
		reply_err(cl, err ? err : "failed");
}

/* Handle whole lines while no reply is outstanding and the output has room. */
static void process(struct client *cl)
{
	struct evbuffer *in = bufferevent_get_input(cl->bev);
	struct evbuffer *out = bufferevent_get_output(cl->bev);
	size_t n;
	char *line;

	while (cl->waiting == 0 && !cl->closing && evbuffer_get_length(out) < OUT_HIGH) {
		line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
		if (line == NULL) {
			if (evbuffer_get_length(in) > CONTROL_MAX_LINE) {
				reply_err(cl, "request line longer than 8192 bytes");
				close_after_write(cl);
			} else if (cl->eof) {
				close_after_write(cl);
			}
			return;
		}
		if (n > CONTROL_MAX_LINE) {
			free(line);
			reply_err(cl, "request line longer than 8192 bytes");
			close_after_write(cl);
			return;
		}
		handle_line(cl, line, n);
		free(line);
	}
}

/* ---- the socket --------------------------------------------------------------- */

static int listen_unix(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	struct stat st;
	mode_t old;
	int fd, probe, r;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "control socket %s: path too long", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path));
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "control socket %s: exists and is not a "
			    "socket; remove it or set [control] socket", path);
			return -1;
		}
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			snprintf(err, errlen, "control socket %s: another process is "
			    "listening on it (a second tgrund for this bot?)", path);
			return -1;
		}
		if (probe >= 0)
			close(probe);
		/* Stale: left by a daemon that was killed. */
		if (unlink(path) != 0 && errno != ENOENT) {
			snprintf(err, errlen, "control socket %s: cannot remove the stale "
			    "socket: %s", path, strerror(errno));
			return -1;
		}
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "control socket: socket: %s", strerror(errno));
		return -1;
	}
	/* Never reachable by others, not even between bind and chmod. */
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r != 0 || chmod(path, 0600) != 0 || listen(fd, 16) != 0) {
		snprintf(err, errlen, "control socket %s: %s: %s", path,
		    r != 0 ? "bind" : "chmod/listen", strerror(errno));
		if (r == 0)
			unlink(path);
		close(fd);
		return -1;
	}
	return fd;
}

struct control *control_new(struct event_base *base, const struct status_ops *ops,
    const char *path, char *err, size_t errlen)
{
	struct control *c = calloc(1, sizeof(*c));
	struct stat st;
	int fd = -1;

	if (c == NULL || (c->path = strdup(path)) == NULL) {
		snprintf(err, errlen, "control socket: out of memory");
		goto fail;
	}
	c->base = base;
	c->ops = *ops;
	LIST_INIT(&c->clients);
	if ((fd = listen_unix(path, err, errlen)) < 0)
		goto fail;
	if (stat(path, &st) == 0) {
		c->dev = st.st_dev;
		c->ino = st.st_ino;
	}
	if ((c->listener = listener_new(base, fd, "control", 0, on_accept, c)) == NULL) {
		snprintf(err, errlen, "control socket %s: cannot listen", path);
		unlink(path);
		close(fd);
		goto fail;
	}
	log_info("control: listening on %s", path);
	return c;
fail:
	if (c != NULL)
		free(c->path);
	free(c);
	return NULL;
}

void control_free(struct control *c)
{
	struct stat st;

	if (c == NULL)
		return;
	while (!LIST_EMPTY(&c->clients))
		client_free(LIST_FIRST(&c->clients));
	listener_free(c->listener);
	/* A successor may have replaced it already: remove only our own. */
	if (stat(c->path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino)
		unlink(c->path);
	free(c->path);
	free(c);
}
