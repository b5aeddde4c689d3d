/* The pending set: updates fetched and not finished, by id, in their per-key order. */
#ifndef TGRUN_PENDING_H
#define TGRUN_PENDING_H

#include <stddef.h>
#include <stdint.h>

#include "dispatch.h"
#include "keys.h"
#include "sequencer.h"

/* One update from its fetch (or replay) until it is finished. */
struct upd {
	int64_t id;
	char *json;		/* the update's bytes, NUL-terminated */
	size_t len;
	int attempt;
	int64_t fetched_ms;	/* added (metrics: dispatch latency) */
	int journaled;		/* written to the journal */
	const char *refused;	/* why no worker can run it (a constant), or NULL */
	enum update_type type;
	/* Cluster mode: the pulled work item, or (leader) published; NULL otherwise. */
	void *ext;
	struct seq_entry se;	/* the sequencer's links */
	struct dsp_entry de;	/* the dispatcher's links */
};

/* How updates are ordered: [sequentialize] mode and the types that bypass it. */
struct pending_rules {
	unsigned sequentialize;
	unsigned bypass;	/* 1 << enum update_type */
};

enum pending_add {
	PENDING_NEW,		/* added: *out is it */
	PENDING_HELD,		/* the set holds that id already */
	PENDING_BAD,		/* not a JSON object with an integer update_id */
};

struct pending;

struct pending *pending_new(void);
/* Frees every update still held. */
void pending_free(struct pending *p);
void pending_set_rules(struct pending *p, const struct pending_rules *r);

/*
 * Add the update `json` (copied) with its keys. `valid`: the bytes were
 * validated already (an element of a getUpdates answer). On PENDING_NEW
 * and PENDING_HELD, *id is its update_id. Out of memory is fatal.
 */
enum pending_add pending_add(struct pending *p, const char *json, size_t len,
    int attempt, int valid, int64_t *id, struct upd **out);
struct upd *pending_get(const struct pending *p, int64_t id);
/* `u` is finished: its keys are released (successors may run) and it is freed. */
void pending_remove(struct pending *p, struct upd *u);
/* The next update whose keys are free, or NULL; each comes out once. */
struct upd *pending_next_ready(struct pending *p);
size_t pending_count(const struct pending *p);
/* Walk the set: start with *it = 0; NULL at the end. No changes meanwhile. */
struct upd *pending_walk(const struct pending *p, size_t *it);

#endif
