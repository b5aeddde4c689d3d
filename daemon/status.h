/* What the master shows of itself to the control socket and the metrics, and what they may ask of it. */
#ifndef TGRUN_STATUS_H
#define TGRUN_STATUS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* One worker process, of any generation. */
struct status_worker {
	int slot, gen;
	pid_t pid;		/* 0 while none runs in the slot */
	const char *state;	/* "empty", "starting", "ready", "draining" */
	int inflight;
	uint64_t done, failed;
	int64_t last_pong_ms;	/* monotonic; -1 before its first answer */
};

/* Cluster mode: one stream's state; `known` 0 when it could not be read. */
struct status_stream {
	uint64_t messages, bytes, first_seq, last_seq;
	int known;
};

/* Cluster mode: one node as its heartbeat entry says. */
struct status_node {
	char node[65];
	char role[16];
	int capacity, in_flight;
	int64_t age_ms;		/* since its last heartbeat */
};

/* Cluster mode: this node's view of the cluster. */
struct status_cluster {
	const char *node;
	const char *role;	/* "leader", "follower", "starting" */
	const char *leader;	/* NULL when unknown */
	int64_t epoch;
	const struct status_node *nodes;
	size_t nnodes;
	struct status_stream journal, work;
	uint64_t pulled, ran;	/* work items this node pulled and finished, ever */
	int released_out;	/* leader: released updates not finished yet */
};

/* The master at one moment: a copy, never a view of its structs. */
struct status {
	const char *bot;
	const char *polling;	/* "polling", "paused (control)", ... */
	int generation;		/* the generation receiving new updates */
	int workers_ready;	/* READY workers of that generation */
	int worker_count;
	int inflight, pending;
	uint64_t fetched, done, failed, retried, dead_lettered, timed_out;
	int64_t dead_letters;	/* in the journal now; dead_lettered without one */
	double rate;		/* updates/s over the last stats interval */
	int64_t last_poll_ok_ms;	/* monotonic; 0 before the first answer */
	int journal_enabled;
	const char *journal_path;
	int64_t journal_bytes;
	const struct status_worker *workers;
	size_t nworkers;
	const struct status_cluster *cluster;	/* NULL in single-machine mode */
};

struct store_dead;
/* One dead letter; non-zero stops the walk. */
typedef int (*status_dead_fn)(void *arg, const struct store_dead *d);

/*
 * The master's side. Errors: -1 with *err set to a message that may be
 * shown as it is.
 */
struct status_ops {
	/* Fill `st`; its strings and workers stay valid until the next call. */
	void (*snapshot)(void *arg, struct status *st);
	/* Same as SIGHUP: 0 started, 1 queued behind a running reload, -1 stopping. */
	int (*reload)(void *arg);
	/* Pause (1) or resume (0) polling; in-flight and pending work goes on. */
	void (*pause)(void *arg, int paused);
	int (*dead_list)(void *arg, status_dead_fn fn, void *fnarg, const char **err);
	/* 1 found, 0 not, -1 error. */
	int (*dead_show)(void *arg, int64_t id, status_dead_fn fn, void *fnarg,
	    const char **err);
	/*
	 * Move dead letter `id` (STATUS_ALL: every one) back into the pending
	 * set, or drop it. How many, or -1.
	 */
	int64_t (*dead_retry)(void *arg, int64_t id, const char **err);
	int64_t (*dead_drop)(void *arg, int64_t id, const char **err);
	/*
	 * Ask the ready worker in `slot` of the serving generation for its
	 * fibers; the answer reaches control_dump_answer() with `req`. 0 with
	 * *pid set, or -1.
	 */
	int (*dump)(void *arg, int slot, uint64_t req, pid_t *pid, const char **err);
	void *arg;
};

#define STATUS_ALL (-1)

#endif
