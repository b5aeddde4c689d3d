/* Cluster membership on NATS JetStream: the connection, and the loop's side of the lease and the roles. */
#include "cluster.h"
#include "cluster_int.h"
#include "clock.h"
#include "config.h"
#include "jsutil.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

/* ---- names ---------------------------------------------------------------- */

void cluster_redact_urls(const char *urls, char *out, size_t len)
{
	size_t n = 0;
	const char *p = urls;

	if (len == 0)
		return;
	while (*p != '\0' && n + 1 < len) {
		const char *end = p + strcspn(p, ","), *scheme = strstr(p, "://"), *at;

		if (scheme != NULL && scheme < end) {
			scheme += 3;
			at = memrchr(scheme, '@', (size_t)(end - scheme));
			n += (size_t)snprintf(out + n, len - n, "%.*s%.*s",
			    (int)(scheme - p), p, (int)(end - (at ? at + 1 : scheme)),
			    at ? at + 1 : scheme);
		} else {
			n += (size_t)snprintf(out + n, len - n, "%.*s", (int)(end - p), p);
		}
		if (n >= len)
			n = len - 1;
		p = *end == ',' ? end + 1 : end;
		if (*p != '\0' && n + 2 < len)
			n += (size_t)snprintf(out + n, len - n, ", ");
	}
	out[n] = '\0';
}

/* ---- the loop's side ---------------------------------------------------------- */

void cluster_post(struct cluster *c, enum ev_type type, int64_t epoch)
{
	uint64_t one = 1;

	if (c->qlen == EVQ_MAX) {
		/* Only the latest role matters: drop the oldest. */
		c->qhead = (c->qhead + 1) % EVQ_MAX;
		c->qlen--;
	}
	c->q[(c->qhead + c->qlen) % EVQ_MAX] = (struct cl_event){ type, epoch };
	c->qlen++;
	if (write(c->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("cluster: write(eventfd): %s", strerror(errno));
}

static void step_down(struct cluster *c, const char *why)
{
	if (c->loop_role != CLUSTER_LEADER)
		return;
	c->loop_role = CLUSTER_FOLLOWER;
	log_err("cluster: lost the lease (%s); polling stopped", why);
	c->cbs.on_follower(c->cbs.arg, 1);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *c = arg;
	uint64_t n;
	char leader[CLUSTER_NODE_MAX + 1];

	if (read(c->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("cluster: read(eventfd): %s", strerror(errno));
	for (;;) {
		struct cl_event e;

		pthread_mutex_lock(&c->mu);
		if (c->qlen == 0) {
			pthread_mutex_unlock(&c->mu);
			return;
		}
		e = c->q[c->qhead];
		c->qhead = (c->qhead + 1) % EVQ_MAX;
		c->qlen--;
		memcpy(leader, c->leader, sizeof(leader));
		pthread_mutex_unlock(&c->mu);
		switch (e.type) {
		case EV_READY:
			c->cbs.on_ready(c->cbs.arg);
			break;
		case EV_LEADER:
			if (c->loop_role == CLUSTER_LEADER)
				break;
			c->loop_role = CLUSTER_LEADER;
			log_notice("cluster: leader (epoch %lld)", (long long)e.epoch);
			c->cbs.on_leader(c->cbs.arg, e.epoch);
			break;
		case EV_LOST:
			step_down(c, "a renewal failed");
			break;
		case EV_FOLLOWER:
			if (c->loop_role == CLUSTER_LEADER) {
				step_down(c, "another node holds it");
				break;
			}
			c->loop_role = CLUSTER_FOLLOWER;
			log_notice("cluster: follower (leader: %s)",
			    leader[0] ? leader : "none yet");
			c->cbs.on_follower(c->cbs.arg, 0);
			break;
		}
	}
}

/*
 * The leader's own clock: without a good renewal for lease - margin, it
 * stops at once, whatever the thread is blocked in.
 */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *c = arg;

	if (c->loop_role != CLUSTER_LEADER ||
	    clock_ms() - atomic_load(&c->last_ok_ms) <= c->lease_ms - c->margin_ms)
		return;
	pthread_mutex_lock(&c->mu);
	if (c->role == CLUSTER_LEADER)
		c->role = CLUSTER_FOLLOWER;
	c->leader[0] = '\0';
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->mu);
	step_down(c, "no renewal within the lease");
}

int cluster_leading(const struct cluster *c)
{
	return c->loop_role == CLUSTER_LEADER &&
	    clock_ms() - atomic_load(&c->last_ok_ms) <= c->lease_ms - c->margin_ms;
}

/* ---- open and close ------------------------------------------------------------- */

/* How long cluster_close() waits for libnats' last callback. */
#define CLOSE_WAIT_S 5

static void on_disconnected(natsConnection *nc, void *arg)
{
	struct cluster *c = arg;

	atomic_store(&c->connected, 0);
	if (!atomic_load(&c->closing))
		log_warn("cluster: disconnected from NATS; reconnecting");
}

/*
 * libnats' last callback for the connection: after it, none of ours runs
 * again, so cluster_close() may free what they use.
 */
static void on_closed(natsConnection *nc, void *arg)
{
	struct cluster *c = arg;

	pthread_mutex_lock(&c->mu);
	c->nats_closed = 1;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->mu);
}

static void on_reconnected(natsConnection *nc, void *arg)
{
	struct cluster *c = arg;
	char url[256] = "", safe[256];

	atomic_store(&c->connected, 1);
	natsConnection_GetConnectedUrl(nc, url, sizeof(url));
	cluster_redact_urls(url, safe, sizeof(safe));
	log_notice("cluster: connected to NATS %s (again)", safe);
}

/* Reconnect forever, from 100 ms up to 2 s between rounds through the list. */
static int64_t reconnect_delay(natsConnection *nc, int attempts, void *arg)
{
	int64_t d = 100;

	for (int i = 1; i < attempts && d < 2000; i++)
		d *= 2;
	return d < 2000 ? d : 2000;
}

static int set_options(struct cluster *c, natsOptions *o, const struct config *cfg,
    char *err, size_t errlen)
{
	natsStatus s;
	const char *urls[CLUSTER_URLS_MAX];
	char *list = strdup(cfg->cluster_nats), *save = NULL;
	int n = 0;

	if (list == NULL) {
		snprintf(err, errlen, "cluster: out of memory");
		return -1;
	}
	/* One string per server: natsOptions_SetURL's list form refuses to connect. */
	for (char *u = strtok_r(list, ",", &save); u != NULL && n < CLUSTER_URLS_MAX;
	    u = strtok_r(NULL, ",", &save))
		urls[n++] = u;
	s = natsOptions_SetServers(o, urls, n);
	explicit_bzero(list, strlen(cfg->cluster_nats));
	free(list);
	if (s != NATS_OK) {
		snprintf(err, errlen, "[cluster] nats: refused by libnats: %s",
		    natsStatus_GetText(s));
		return -1;
	}
	s = natsOptions_SetName(o, c->node);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(o, -1);
	if (s == NATS_OK)
		s = natsOptions_SetCustomReconnectDelay(o, reconnect_delay, c);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, 2000);
	if (s == NATS_OK)
		s = natsOptions_SetPingInterval(o, c->lease_ms / 2 > 1000 ? c->lease_ms / 2 : 1000);
	if (s == NATS_OK)
		s = natsOptions_SetMaxPingsOut(o, 2);
	if (s == NATS_OK)
		s = natsOptions_SetRetryOnFailedConnect(o, true, on_reconnected, c);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(o, on_disconnected, c);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(o, on_reconnected, c);
	if (s == NATS_OK)
		s = natsOptions_SetClosedCB(o, on_closed, c);
	if (s != NATS_OK) {
		snprintf(err, errlen, "cluster: NATS options: %s", natsStatus_GetText(s));
		return -1;
	}
	if (cfg->cluster_credentials != NULL &&
	    (s = natsOptions_SetUserCredentialsFromFiles(o, cfg->cluster_credentials,
	    NULL)) != NATS_OK) {
		snprintf(err, errlen, "[cluster] credentials: %s: %s",
		    cfg->cluster_credentials, natsStatus_GetText(s));
		return -1;
	}
	return 0;
}

static int make_js(natsConnection *nc, int64_t wait_ms, jsCtx **out)
{
	jsOptions o;

	jsOptions_Init(&o);
	o.Wait = wait_ms;
	return natsConnection_JetStream(out, nc, &o) == NATS_OK ? 0 : -1;
}

struct cluster *cluster_open(const struct config *cfg, struct event_base *base,
    const struct cluster_cbs *cbs, char *err, size_t errlen)
{
	struct cluster *c = calloc(1, sizeof(*c));
	natsOptions *o = NULL;
	natsStatus s;
	struct timeval tv = { 0, 100 * 1000 };
	int64_t wait;
	pthread_condattr_t ca;

	if (c == NULL) {
		snprintf(err, errlen, "cluster: out of memory");
		return NULL;
	}
	c->efd = -1;
	pthread_mutex_init(&c->mu, NULL);
	/* Waits count on the monotonic clock, as the lease's deadline does. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	snprintf(c->node, sizeof(c->node), "%s", cfg->cluster_node);
	snprintf(c->bot, sizeof(c->bot), "%s", cfg->name);
	c->replicas = cfg->cluster_replicas;
	c->lease_ms = cfg->cluster_lease_ms;
	c->margin_ms = c->lease_ms / 4;
	c->renew_ms = c->lease_ms / 3;
	c->try_ms = c->lease_ms / 5;
	c->cbs = *cbs;
	c->base = base;
	c->role = c->loop_role = CLUSTER_STARTING;
	if (natsOptions_Create(&o) != NATS_OK) {
		snprintf(err, errlen, "cluster: natsOptions_Create failed");
		goto fail;
	}
	if (set_options(c, o, cfg, err, errlen) != 0)
		goto fail;
	s = natsConnection_Connect(&c->nc, o);
	if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
		snprintf(err, errlen, "cluster: connecting to NATS: %s", natsStatus_GetText(s));
		goto fail;
	}
	if (s == NATS_NOT_YET_CONNECTED)
		log_warn("cluster: no NATS server answers yet; retrying");
	else
		on_reconnected(c->nc, c);
	natsOptions_Destroy(o);
	o = NULL;
	/* A lease request must end well within the lease. */
	wait = c->lease_ms / 4 < 2000 ? c->lease_ms / 4 : 2000;
	if (make_js(c->nc, 5000, &c->js) != 0 || make_js(c->nc, wait, &c->kvjs) != 0) {
		snprintf(err, errlen, "cluster: cannot make a JetStream context");
		goto fail;
	}
	if ((c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
	    (c->wake_ev = event_new(base, c->efd, EV_READ | EV_PERSIST, on_wake, c)) == NULL ||
	    event_add(c->wake_ev, NULL) != 0 ||
	    (c->deadline_ev = event_new(base, -1, EV_PERSIST, on_deadline, c)) == NULL ||
	    event_add(c->deadline_ev, &tv) != 0) {
		snprintf(err, errlen, "cluster: cannot watch the cluster thread: %s",
		    strerror(errno));
		goto fail;
	}
	/* The lease has a thread of its own: no status read may delay a renewal. */
	if (pthread_create(&c->info_thread, NULL, cluster_info_main, c) != 0 ||
	    (c->threads = 1, pthread_create(&c->lease_thread, NULL, cluster_lease_main, c)) != 0) {
		snprintf(err, errlen, "cluster: cannot start its threads");
		goto fail;
	}
	c->threads = 2;
	return c;
fail:
	natsOptions_Destroy(o);
	cluster_close(c);
	return NULL;
}

void cluster_close(struct cluster *c)
{
	if (c == NULL)
		return;
	atomic_store(&c->closing, 1);
	if (c->threads > 0) {
		pthread_mutex_lock(&c->mu);
		c->stop = 1;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->info_thread, NULL);
		if (c->threads > 1)
			pthread_join(c->lease_thread, NULL);
	}
	if (c->wake_ev)
		event_free(c->wake_ev);
	if (c->deadline_ev)
		event_free(c->deadline_ev);
	if (c->efd >= 0)
		close(c->efd);
	kvStore_Destroy(c->lease_kv);
	kvStore_Destroy(c->nodes_kv);
	jsCtx_Destroy(c->js);
	jsCtx_Destroy(c->kvjs);
	if (c->nc != NULL) {
		struct timespec until;
		int closed;

		natsConnection_Close(c->nc);
		natsConnection_Destroy(c->nc);
		/* Callbacks run on libnats' thread: wait for the last one (bounded). */
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += CLOSE_WAIT_S;
		pthread_mutex_lock(&c->mu);
		while (!c->nats_closed &&
		    pthread_cond_timedwait(&c->cond, &c->mu, &until) == 0)
			;
		closed = c->nats_closed;
		pthread_mutex_unlock(&c->mu);
		if (!closed) {
			/* A callback may still come: leave it memory that is valid. */
			log_warn("cluster: the NATS connection did not close within %d s",
			    CLOSE_WAIT_S);
			return;
		}
		jsu_deferred_free();
	}
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cond);
	free(c);
}

natsConnection *cluster_conn(struct cluster *c)
{
	return c->nc;
}

jsCtx *cluster_js(struct cluster *c)
{
	return c->js;
}

static void set_flag(struct cluster *c, int *flag)
{
	pthread_mutex_lock(&c->mu);
	*flag = 1;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->mu);
}

void cluster_elect(struct cluster *c)
{
	set_flag(c, &c->electing);
}

void cluster_recheck(struct cluster *c)
{
	set_flag(c, &c->recheck);
}

void cluster_set_load(struct cluster *c, int capacity, int in_flight)
{
	pthread_mutex_lock(&c->mu);
	c->capacity = capacity;
	c->in_flight = in_flight;
	pthread_mutex_unlock(&c->mu);
}

void cluster_resign(struct cluster *c)
{
	struct timespec ts;

	c->loop_role = c->loop_role == CLUSTER_LEADER ? CLUSTER_FOLLOWER : c->loop_role;
	pthread_mutex_lock(&c->mu);
	c->resign = 1;
	pthread_cond_broadcast(&c->cond);
	/* Bounded: the thread's requests end within kvjs's wait. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += 3;
	while (!c->resigned && c->threads > 1)
		if (pthread_cond_timedwait(&c->cond, &c->mu, &ts) != 0)
			break;
	pthread_mutex_unlock(&c->mu);
}

int cluster_capacity(struct cluster *c)
{
	int n;

	pthread_mutex_lock(&c->mu);
	n = c->cluster_capacity;
	pthread_mutex_unlock(&c->mu);
	return n;
}

void cluster_status(struct cluster *c, struct cluster_status *out)
{
	memset(out, 0, sizeof(*out));
	out->node = c->node;
	out->role = c->loop_role;
	out->connected = atomic_load(&c->connected);
	pthread_mutex_lock(&c->mu);
	memcpy(out->leader, c->leader, sizeof(out->leader));
	out->epoch = c->epoch;
	out->nnodes = c->nnodes;
	memcpy(out->nodes, c->nodes, sizeof(out->nodes));
	out->capacity = c->cluster_capacity;
	out->journal = c->journal;
	out->work = c->work;
	pthread_mutex_unlock(&c->mu);
	if (out->role == CLUSTER_LEADER)
		snprintf(out->leader, sizeof(out->leader), "%s", c->node);
}
