/* Cluster membership on NATS JetStream: the connection, the leader lease and the node heartbeats. */
#ifndef TGRUN_CLUSTER_H
#define TGRUN_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

#include "status.h"

struct config;
struct event_base;
struct cluster;

#define CLUSTER_NODE_MAX 64
/* Nodes listed in a status snapshot; more are counted, not listed. */
#define CLUSTER_LIST_MAX 64

enum cluster_role { CLUSTER_STARTING, CLUSTER_FOLLOWER, CLUSTER_LEADER };

/* Every callback runs on the loop thread of the event base given to cluster_open(). */
struct cluster_cbs {
	void *arg;
	/* Connected, the LEASE and NODES buckets exist: streams may be opened. */
	void (*on_ready)(void *arg);
	/* This node holds the lease from now on, with this epoch. */
	void (*on_leader)(void *arg, int64_t epoch);
	/*
	 * This node serves as a follower. `lost`: it was leader and stepped
	 * down (a renewal failed or came too late, or a 409 re-check found
	 * another holder); polling and publishing must stop at once.
	 */
	void (*on_follower)(void *arg, int lost);
};

struct cluster_status {
	const char *node;
	enum cluster_role role;
	char leader[CLUSTER_NODE_MAX + 1];	/* "" when unknown */
	int64_t epoch;
	int connected;
	size_t nnodes;			/* alive nodes seen in the NODES bucket */
	struct status_node nodes[CLUSTER_LIST_MAX];
	int capacity;			/* sum of the alive nodes' capacity */
	struct status_stream journal, work;	/* as last read, every 2 s */
};

/*
 * Connect to cfg's [cluster] NATS servers (libnats' own threads; reconnects
 * forever) and start the thread that makes the buckets, keeps this node's
 * heartbeat and, after cluster_elect(), takes part in the election. NULL
 * with a message in err when the options are refused.
 */
struct cluster *cluster_open(const struct config *cfg, struct event_base *base,
    const struct cluster_cbs *cbs, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* Valid after on_ready, until cluster_close(). */
natsConnection *cluster_conn(struct cluster *c);
jsCtx *cluster_js(struct cluster *c);
/* Take part in the election from now on (the master's streams are open). */
void cluster_elect(struct cluster *c);
/* What this node reports in its heartbeat. */
void cluster_set_load(struct cluster *c, int capacity, int in_flight);
/* A 409 from getUpdates: check now that the lease is still this node's. */
void cluster_recheck(struct cluster *c);
/* 1 while this node may poll and publish as leader. */
int cluster_leading(const struct cluster *c);
/*
 * Stop taking part; a leader deletes the lease key (revision-checked,
 * bounded) so that another node takes over at once. Blocks at most about
 * one request timeout.
 */
void cluster_resign(struct cluster *c);
/* The sum of the alive nodes' capacity, as last read (no request). */
int cluster_capacity(struct cluster *c);
/* A snapshot of the last known state (no request). */
void cluster_status(struct cluster *c, struct cluster_status *out);
/* "nats://user:pass@host:4222,..." with every user:password@ left out. */
void cluster_redact_urls(const char *urls, char *out, size_t len);
void cluster_close(struct cluster *c);

#endif
