/* Cluster membership on NATS JetStream: the connection, the leader lease in a KV bucket, node heartbeats. */
#include "cluster.h"
#include "clock.h"
#include "config.h"
#include "jsutil.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <event2/event.h>

/*
 * The lease: the key "leader" in TGRUN_<bot>_LEASE, whose TTL is the lease.
 * It is taken with a create (only if absent) and renewed every lease/3 with
 * an update checked against the revision this node wrote last. The server
 * drops the key `lease` after the last write it got; the holder counts from
 * before it sent that write and stops leading at lease - margin, so it has
 * stopped before anyone else can take the key.
 */
#define LEASE_KEY "leader"
#define HEARTBEAT_MS 1000
#define NODES_READ_MS 2000
#define SETUP_RETRY_MS 1000
/* A renewal that got no answer is tried again this soon, until the deadline. */
#define RENEW_RETRY_MS 100
#define CLUSTER_URLS_MAX 32

enum ev_type { EV_READY, EV_LEADER, EV_FOLLOWER, EV_LOST };

struct cl_event {
	enum ev_type type;
	int64_t epoch;
};

#define EVQ_MAX 16

struct cluster {
	/* fixed after open */
	char node[CLUSTER_NODE_MAX + 1];
	char bot[128];
	int replicas;
	int64_t lease_ms, margin_ms, renew_ms, try_ms;
	struct cluster_cbs cbs;
	struct event_base *base;
	struct event *wake_ev, *deadline_ev;
	int efd;
	natsConnection *nc;
	jsCtx *js;		/* for the master's streams: default waits */
	jsCtx *kvjs;		/* for the buckets: requests bounded below the lease */
	kvStore *lease_kv, *nodes_kv;
	pthread_t lease_thread, info_thread;
	int threads;			/* started: 0, 1 or 2 */

	pthread_mutex_t mu;
	pthread_cond_t cond;
	/* under mu */
	int stop, setup_done, electing, recheck, resign, resigned;
	enum cluster_role role;		/* the thread's view */
	uint64_t rev;			/* of this node's last lease write */
	int64_t epoch;
	char leader[CLUSTER_NODE_MAX + 1];
	int capacity, in_flight;
	struct status_node nodes[CLUSTER_LIST_MAX];
	size_t nnodes;
	struct status_stream journal, work;
	int cluster_capacity;
	struct cl_event q[EVQ_MAX];
	size_t qhead, qlen;

	_Atomic int64_t last_ok_ms;	/* when the last good renewal was sent */
	_Atomic int connected;
	_Atomic int closing;
	enum cluster_role loop_role;	/* the loop's view (loop thread only) */
};

static void *lease_main(void *arg);
static void *info_main(void *arg);
static const char *nats_why(natsStatus s);

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

/* libnats' last error text of this thread, else the status's. */
static const char *nats_why(natsStatus s)
{
	const char *e = nats_GetLastError(NULL);

	return e != NULL && *e != '\0' ? e : natsStatus_GetText(s);
}

/* ---- the loop's side ---------------------------------------------------------- */

/* Thread side: queue an event for the loop (under mu). */
static void post(struct cluster *c, enum ev_type type, int64_t epoch)
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

static void on_disconnected(natsConnection *nc, void *arg)
{
	struct cluster *c = arg;

	atomic_store(&c->connected, 0);
	if (!atomic_load(&c->closing))
		log_warn("cluster: disconnected from NATS; reconnecting");
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

	if (c == NULL) {
		snprintf(err, errlen, "cluster: out of memory");
		return NULL;
	}
	c->efd = -1;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cond, NULL);
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
	if (pthread_create(&c->info_thread, NULL, info_main, c) != 0 ||
	    (c->threads = 1, pthread_create(&c->lease_thread, NULL, lease_main, c)) != 0) {
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
		natsConnection_Close(c->nc);
		natsConnection_Destroy(c->nc);
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
	clock_gettime(CLOCK_REALTIME, &ts);
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

/* ---- the thread: buckets, heartbeat, lease ----------------------------------------- */

static int64_t real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int bucket(struct cluster *c, const char *suffix, int64_t ttl_ms, kvStore **out)
{
	char name[JSU_NAME_MAX];
	kvConfig kc;
	natsStatus s;

	if (jsu_stream_name(name, sizeof(name), c->bot, suffix) != 0)
		return -1;
	kvConfig_Init(&kc);
	kc.Bucket = name;
	kc.History = 1;
	kc.TTL = ttl_ms * 1000000;	/* libnats 3.4 passes it on as the stream's MaxAge, in ns */
	kc.StorageType = js_FileStorage;
	kc.Replicas = c->replicas;
	s = js_CreateKeyValue(out, c->js, &kc);
	if (s != NATS_OK) {
		char why[256];

		snprintf(why, sizeof(why), "%s", nats_why(s));
		/* Made by another node, maybe otherwise: bind it as it is. */
		if (js_KeyValue(out, c->js, name) != NATS_OK) {
			log_warn("cluster: creating bucket %s: %s", name, why);
			return -1;
		}
	}
	return 0;
}

/* Wait under mu until `ms` passed or something asks the thread to act. */
static void nap(struct cluster *c, int64_t ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&c->cond, &c->mu, &ts);
}

static int setup(struct cluster *c)
{
	if (c->lease_kv == NULL && bucket(c, "LEASE", c->lease_ms, &c->lease_kv) != 0)
		return -1;
	if (c->nodes_kv == NULL && bucket(c, "NODES", 3 * c->lease_ms, &c->nodes_kv) != 0)
		return -1;
	return 0;
}

static void heartbeat(struct cluster *c)
{
	char buf[256];
	int cap, inf;
	enum cluster_role role;

	pthread_mutex_lock(&c->mu);
	cap = c->capacity;
	inf = c->in_flight;
	role = c->role;
	pthread_mutex_unlock(&c->mu);
	snprintf(buf, sizeof(buf), "{\"node\":\"%s\",\"role\":\"%s\",\"capacity\":%d,"
	    "\"in_flight\":%d,\"pid\":%ld}", c->node,
	    role == CLUSTER_LEADER ? "leader" : role == CLUSTER_FOLLOWER ? "follower" :
	    "starting", cap, inf, (long)getpid());
	if (kvStore_PutString(NULL, c->nodes_kv, c->node, buf) != NATS_OK)
		log_debug("cluster: heartbeat: %s", nats_GetLastError(NULL));
}

/* The alive nodes, for status and the leader's bound on released updates. */
static void read_nodes(struct cluster *c)
{
	kvKeysList keys = { 0 };
	kvWatchOptions wo;
	struct status_node list[CLUSTER_LIST_MAX];
	size_t n = 0, total = 0;
	int capacity = 0;
	int64_t now = real_ms();

	kvWatchOptions_Init(&wo);
	wo.Timeout = c->lease_ms / 2;
	if (kvStore_Keys(&keys, c->nodes_kv, &wo) != NATS_OK)
		return;
	for (int i = 0; i < keys.Count; i++) {
		kvEntry *e = NULL;
		json_t *j;

		if (kvStore_Get(&e, c->nodes_kv, keys.Keys[i]) != NATS_OK)
			continue;
		j = json_loadb(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), 0, NULL);
		if (j != NULL) {
			int cap = (int)json_integer_value(json_object_get(j, "capacity"));

			total++;
			capacity += cap;
			if (n < CLUSTER_LIST_MAX) {
				struct status_node *p = &list[n++];

				snprintf(p->node, sizeof(p->node), "%s", keys.Keys[i]);
				snprintf(p->role, sizeof(p->role), "%s",
				    json_string_value(json_object_get(j, "role")) ?
				    json_string_value(json_object_get(j, "role")) : "");
				p->capacity = cap;
				p->in_flight = (int)json_integer_value(
				    json_object_get(j, "in_flight"));
				p->age_ms = now - kvEntry_Created(e) / 1000000;
			}
			json_decref(j);
		}
		kvEntry_Destroy(e);
	}
	kvKeysList_Destroy(&keys);
	pthread_mutex_lock(&c->mu);
	memcpy(c->nodes, list, n * sizeof(list[0]));
	c->nnodes = total < n ? n : total;
	c->cluster_capacity = capacity;
	pthread_mutex_unlock(&c->mu);
}

static void read_stream(struct cluster *c, const char *suffix, struct status_stream *out)
{
	char name[JSU_NAME_MAX];
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;

	memset(out, 0, sizeof(*out));
	if (jsu_stream_name(name, sizeof(name), c->bot, suffix) != 0)
		return;
	if (js_GetStreamInfo(&si, c->kvjs, name, NULL, &jerr) != NATS_OK || si == NULL)
		return;
	*out = (struct status_stream){ si->State.Msgs, si->State.Bytes,
	    si->State.FirstSeq, si->State.LastSeq, 1 };
	jsStreamInfo_Destroy(si);
}

static void read_streams(struct cluster *c)
{
	struct status_stream j, w;

	read_stream(c, "JOURNAL", &j);
	read_stream(c, "WORK", &w);
	pthread_mutex_lock(&c->mu);
	c->journal = j;
	c->work = w;
	pthread_mutex_unlock(&c->mu);
}

static void lease_value(struct cluster *c, int64_t epoch, char *buf, size_t len)
{
	snprintf(buf, len, "{\"node\":\"%s\",\"epoch\":%lld}", c->node, (long long)epoch);
}

/*
 * Delete the key if it is still the one this node wrote (a delete marker
 * published with the expected last revision), so the next leader need not
 * wait for the TTL.
 */
static void release(struct cluster *c, uint64_t rev)
{
	char subj[200], name[160];
	natsMsg *msg = NULL;
	jsPubOptions po;
	jsPubAck *ack = NULL;

	if (jsu_stream_name(name, sizeof(name), c->bot, "LEASE") != 0)
		return;
	snprintf(subj, sizeof(subj), "$KV.%s.%s", name, LEASE_KEY);
	jsPubOptions_Init(&po);
	po.ExpectLastSubjectSeq = rev;
	if (natsMsg_Create(&msg, subj, NULL, NULL, 0) != NATS_OK ||
	    natsMsgHeader_Set(msg, "KV-Operation", "DEL") != NATS_OK ||
	    js_PublishMsg(&ack, c->kvjs, msg, &po, NULL) != NATS_OK)
		log_warn("cluster: releasing the lease: %s; it expires by itself",
		    nats_why(NATS_ERR));
	else
		log_notice("cluster: lease released");
	jsPubAck_Destroy(ack);
	natsMsg_Destroy(msg);
}

/*
 * Is the key still the one this node wrote? 1 yes, 0 no (another revision,
 * or gone), -1 no answer.
 */
static int still_ours(struct cluster *c, uint64_t rev)
{
	kvEntry *e = NULL;
	natsStatus s = kvStore_Get(&e, c->lease_kv, LEASE_KEY);
	int r;

	if (s == NATS_NOT_FOUND)
		return 0;
	if (s != NATS_OK)
		return -1;
	r = kvEntry_Revision(e) == rev;
	kvEntry_Destroy(e);
	return r;
}

/*
 * Leader: renew with the revision this node wrote last. A refusal (the key
 * is another's, or gone) steps down at once; no answer is tried again until
 * the loop's deadline steps down. 1 renewed, 0 not (yet). Called without mu.
 */
static int renew(struct cluster *c)
{
	char buf[256];
	uint64_t rev, newrev = 0;
	int64_t sent = clock_ms(), epoch;
	natsStatus s;
	int ours = 1;

	pthread_mutex_lock(&c->mu);
	rev = c->rev;
	epoch = c->epoch;
	pthread_mutex_unlock(&c->mu);
	lease_value(c, epoch, buf, sizeof(buf));
	s = kvStore_UpdateString(&newrev, c->lease_kv, LEASE_KEY, buf, rev);
	if (s != NATS_OK) {
		log_warn("cluster: renewing the lease: %s", nats_why(s));
		ours = still_ours(c, rev);
	}
	pthread_mutex_lock(&c->mu);
	if (c->role != CLUSTER_LEADER) {
		/* The loop stepped down meanwhile: give the key up if it is still ours. */
		pthread_mutex_unlock(&c->mu);
		if (s == NATS_OK)
			release(c, newrev);
		return 0;
	}
	if (s == NATS_OK) {
		c->rev = newrev;
		atomic_store(&c->last_ok_ms, sent);
	} else if (ours == 0) {
		c->role = CLUSTER_FOLLOWER;
		c->leader[0] = '\0';
		post(c, EV_LOST, 0);
	}
	pthread_mutex_unlock(&c->mu);
	return s == NATS_OK;
}

/* Follower: learn the holder; take the key when it is absent. Called without mu. */
static void look(struct cluster *c, int first)
{
	kvEntry *e = NULL;
	natsStatus s;
	char holder[CLUSTER_NODE_MAX + 1] = "", buf[256];
	uint64_t rev = 0, rev2 = 0;
	int64_t sent = clock_ms();

	s = kvStore_Get(&e, c->lease_kv, LEASE_KEY);
	if (s == NATS_OK) {
		json_t *j = json_loadb(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), 0, NULL);
		const char *n = json_string_value(json_object_get(j, "node"));

		snprintf(holder, sizeof(holder), "%s", n ? n : "?");
		json_decref(j);
		rev = kvEntry_Revision(e);
		kvEntry_Destroy(e);
		/*
		 * This node's name but not its lease: written before it stepped
		 * down, or by its previous process. Nobody renews it: let it go.
		 */
		if (strcmp(holder, c->node) == 0) {
			release(c, rev);
			return;
		}
		pthread_mutex_lock(&c->mu);
		if (first || strcmp(holder, c->leader) != 0) {
			memcpy(c->leader, holder, sizeof(holder));
			c->role = CLUSTER_FOLLOWER;
			post(c, EV_FOLLOWER, 0);
		}
		pthread_mutex_unlock(&c->mu);
		return;
	}
	if (s != NATS_NOT_FOUND) {
		if (first) {
			pthread_mutex_lock(&c->mu);
			c->role = CLUSTER_FOLLOWER;
			post(c, EV_FOLLOWER, 0);
			pthread_mutex_unlock(&c->mu);
		}
		return;
	}
	/* Absent or deleted: take it. The epoch is the revision of the take. */
	lease_value(c, 0, buf, sizeof(buf));
	if (kvStore_CreateString(&rev, c->lease_kv, LEASE_KEY, buf) != NATS_OK) {
		if (first) {
			pthread_mutex_lock(&c->mu);
			c->role = CLUSTER_FOLLOWER;
			post(c, EV_FOLLOWER, 0);
			pthread_mutex_unlock(&c->mu);
		}
		return;	/* someone else was faster: the next look names them */
	}
	lease_value(c, (int64_t)rev, buf, sizeof(buf));
	if (kvStore_UpdateString(&rev2, c->lease_kv, LEASE_KEY, buf, rev) != NATS_OK)
		rev2 = 0;
	pthread_mutex_lock(&c->mu);
	if (rev2 != 0) {
		c->rev = rev2;
		c->epoch = (int64_t)rev;
		c->role = CLUSTER_LEADER;
		snprintf(c->leader, sizeof(c->leader), "%s", c->node);
		atomic_store(&c->last_ok_ms, sent);
		post(c, EV_LEADER, (int64_t)rev);
	}
	pthread_mutex_unlock(&c->mu);
}

/* Re-check after a 409: is the key still the one this node wrote? */
static void recheck(struct cluster *c)
{
	uint64_t rev;
	int ours;

	pthread_mutex_lock(&c->mu);
	rev = c->rev;
	pthread_mutex_unlock(&c->mu);
	ours = still_ours(c, rev);
	log_notice("cluster: 409 from getUpdates: the lease is %s",
	    ours == 1 ? "still this node's" : ours == 0 ? "not this node's any more" :
	    "unknown (no answer); the deadline decides");
	if (ours != 0)
		return;
	pthread_mutex_lock(&c->mu);
	if (c->role == CLUSTER_LEADER) {
		c->role = CLUSTER_FOLLOWER;
		c->leader[0] = '\0';
		post(c, EV_LOST, 0);
	}
	pthread_mutex_unlock(&c->mu);
}

/* Connected and the buckets made, then this node's heartbeat and the cluster's state. */
static void *info_main(void *arg)
{
	struct cluster *c = arg;
	int64_t next_nodes = 0, next_hb = 0;

	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		int ok;

		pthread_mutex_unlock(&c->mu);
		ok = natsConnection_Status(c->nc) == NATS_CONN_STATUS_CONNECTED &&
		    setup(c) == 0;
		pthread_mutex_lock(&c->mu);
		if (ok)
			break;
		nap(c, SETUP_RETRY_MS);
	}
	if (!c->stop) {
		c->setup_done = 1;
		pthread_cond_broadcast(&c->cond);
		post(c, EV_READY, 0);
	}
	while (!c->stop) {
		int64_t now = clock_ms();

		if (now < next_hb) {
			nap(c, next_hb - now);
			continue;
		}
		next_hb = now + HEARTBEAT_MS;
		pthread_mutex_unlock(&c->mu);
		heartbeat(c);
		if (now >= next_nodes) {
			read_nodes(c);
			read_streams(c);
			next_nodes = now + NODES_READ_MS;
		}
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* The election: take, renew, re-check and give up the lease. */
static void *lease_main(void *arg)
{
	struct cluster *c = arg;
	int64_t next_lease = 0;
	int first = 1;

	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		int64_t now = clock_ms();

		if (c->resign && !c->resigned) {
			uint64_t rev = c->rev;
			int was = c->role == CLUSTER_LEADER;

			c->role = CLUSTER_FOLLOWER;
			c->electing = 0;
			pthread_mutex_unlock(&c->mu);
			if (was)
				release(c, rev);
			pthread_mutex_lock(&c->mu);
			c->resigned = 1;
			pthread_cond_broadcast(&c->cond);
			continue;
		}
		if (!c->setup_done || !c->electing) {
			nap(c, 1000);
			continue;
		}
		if (c->recheck) {
			c->recheck = 0;
			if (c->role == CLUSTER_LEADER) {
				pthread_mutex_unlock(&c->mu);
				recheck(c);
				pthread_mutex_lock(&c->mu);
			}
			continue;
		}
		if (now >= next_lease) {
			int leading = c->role == CLUSTER_LEADER, ok = 1;

			pthread_mutex_unlock(&c->mu);
			if (leading)
				ok = renew(c);
			else
				look(c, first);
			first = 0;
			pthread_mutex_lock(&c->mu);
			next_lease = clock_ms() + (c->role != CLUSTER_LEADER ? c->try_ms :
			    ok ? c->renew_ms : RENEW_RETRY_MS);
		}
		if (!c->stop && !c->recheck && !(c->resign && !c->resigned))
			nap(c, next_lease - clock_ms());
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}
