/* The sequencer: a FIFO per key; an update runs only when it heads all its FIFOs. */
#ifndef TGRUN_SEQUENCER_H
#define TGRUN_SEQUENCER_H

#include <stddef.h>
#include <stdint.h>

struct seq;

/*
 * An entry the caller owns and embeds in its own update record; the
 * sequencer links it into its key FIFOs. `keys`/`nkeys` are set by the
 * caller before seq_add() and not changed until seq_remove().
 */
struct seq_entry {
	uint64_t keys[3];
	int nkeys;
	/* private to the sequencer */
	int waiting;		/* number of keys where it is not the head */
	int queued;		/* on the ready list */
	struct seq_entry *ready_next;
	void *priv[3];		/* per-key FIFO node links */
};

struct seq *seq_new(void);
void seq_free(struct seq *s);

/*
 * Append `e` at the tail of each of its keys' FIFOs. If it heads all of them
 * (or has no keys) it is put on the ready list at once.
 * Returns 0, or -1 when out of memory.
 */
int seq_add(struct seq *s, struct seq_entry *e)
	__attribute__((warn_unused_result));

/*
 * Take the next runnable entry, or NULL. Entries come out in the order they
 * became runnable; each comes out once.
 */
struct seq_entry *seq_next_ready(struct seq *s);

/*
 * `e` finished: unlink it from its FIFOs; successors that now head all
 * their FIFOs become ready. `e` must have been returned by seq_next_ready()
 * (the running entry heads all of its FIFOs), or be still waiting (removing
 * a queued entry that never ran is allowed too).
 */
void seq_remove(struct seq *s, struct seq_entry *e);

/* Counts for tests and status: entries held, distinct keys with a FIFO. */
size_t seq_count(const struct seq *s);
size_t seq_nkeys(const struct seq *s);

#endif
