/* Private to daemon/cluster*.c: the cluster's state, shared by the loop's side and the threads. */
#ifndef TGRUN_CLUSTER_INT_H
#define TGRUN_CLUSTER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <nats/nats.h>

#include "cluster.h"

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
	int nats_closed;		/* libnats' last callback ran (on_closed) */
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

/* cluster.c: queue an event for the loop (under mu). */
void cluster_post(struct cluster *c, enum ev_type type, int64_t epoch);
/* cluster_lease.c: the threads. */
void *cluster_lease_main(void *arg);
void *cluster_info_main(void *arg);

#endif
