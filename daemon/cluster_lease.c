/* Cluster threads: the buckets, this node's heartbeat, the cluster's state, and the leader lease. */
#include "cluster.h"
#include "cluster_int.h"
#include "clock.h"
#include "jsutil.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

/* libnats' last error text of this thread, else the status's. */
static const char *nats_why(natsStatus s)
{
	const char *e = nats_GetLastError(NULL);

	return e != NULL && *e != '\0' ? e : natsStatus_GetText(s);
}

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
	clock_gettime(CLOCK_MONOTONIC, &ts);
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
		cluster_post(c, EV_LOST, 0);
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
			cluster_post(c, EV_FOLLOWER, 0);
		}
		pthread_mutex_unlock(&c->mu);
		return;
	}
	if (s != NATS_NOT_FOUND) {
		if (first) {
			pthread_mutex_lock(&c->mu);
			c->role = CLUSTER_FOLLOWER;
			cluster_post(c, EV_FOLLOWER, 0);
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
			cluster_post(c, EV_FOLLOWER, 0);
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
		cluster_post(c, EV_LEADER, (int64_t)rev);
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
		cluster_post(c, EV_LOST, 0);
	}
	pthread_mutex_unlock(&c->mu);
}

/* Connected and the buckets made, then this node's heartbeat and the cluster's state. */
void *cluster_info_main(void *arg)
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
		cluster_post(c, EV_READY, 0);
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
void *cluster_lease_main(void *arg)
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
