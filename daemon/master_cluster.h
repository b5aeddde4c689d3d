/* The master in cluster mode (daemon/master_cluster.c): what the rest of the master calls, behind m->mc != NULL. */
#ifndef TGRUN_MASTER_CLUSTER_H
#define TGRUN_MASTER_CLUSTER_H

#include <stdint.h>

#include "cluster.h"
#include "status.h"

struct master;
struct config;
struct dsp_entry;
struct wslot;

/* What the status snapshot points into. */
struct master_cluster_status {
	struct cluster_status cl;
	struct status_cluster st;
};

/*
 * With a [cluster] section: connect (in the background) and make the
 * cluster state m->mc. 0 (also without [cluster]), or -1 (logged).
 */
int master_cluster_open(struct master *m) __attribute__((warn_unused_result));
void master_cluster_close(struct master *m);
/* The first worker generation is ready: pull work and take part in the election. */
void master_cluster_started(struct master *m);
/* m->cfg's limits apply (start, reload). */
void master_cluster_apply_config(struct master *m);
/* A reload keeps the running [cluster] settings (they need a restart). */
void master_cluster_keep_config(const struct config *old, struct config *c);
/* Leader: release what the sequencer lets go; every node: run pulled items. */
void master_cluster_dispatch(struct master *m);
/* The dispatcher's next pulled item, or NULL. */
struct dsp_entry *master_cluster_next(struct master *m);
/* 1 when this node is leader with its duties taken: it may call getUpdates. */
int master_cluster_may_poll(const struct master *m);
/* 409 Conflict from getUpdates: check the lease before polling again. */
void master_cluster_conflict(struct master *m);
/* A worker's DONE for a pulled item. */
void master_cluster_update_done(struct master *m, struct wslot *w, int64_t id,
    int status, uint32_t ms);
/* A pulled item whose worker died. */
void master_cluster_lost(struct master *m, struct dsp_entry *e, int timed_out, int slot);
/* Every loop tick: this node's load for its heartbeat. */
void master_cluster_tick(struct master *m);
/* Stop polling and releasing at once; forget the leader's state. */
void master_cluster_drop_leader(struct master *m);
/* SIGTERM: pull no more, hand back waiting items, give up the lease. */
void master_cluster_stop(struct master *m);
/* Fill `out` for a status snapshot; `out->st` points into `out`. */
void master_cluster_status(struct master *m, struct master_cluster_status *out);

#endif
