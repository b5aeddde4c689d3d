/* The sequencer: a FIFO per key; an update runs only when it heads all its FIFOs. */
#ifndef TGRUN_SEQUENCER_H
#define TGRUN_SEQUENCER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct seq;

/* Where an entry is; SEQ_IDLE before seq_add() and after seq_remove(). */
enum seq_state {
	SEQ_IDLE = 0,
	SEQ_WAITING,		/* behind another entry in some key FIFO */
	SEQ_READY,		/* heads all its FIFOs, not yet taken */
	SEQ_RUNNING,		/* returned by seq_next_ready() */
};

/* Private to the sequencer: the entry's place in one key's FIFO. */
struct seq_node {
	struct seq_node *prev, *next;
	struct seq_entry *entry;	/* NULL: a repeated key, not linked */
};

/*
 * An entry the caller owns and embeds in its own update record; the
 * sequencer links it into its key FIFOs, so it must not move or be freed
 * between seq_add() and seq_remove(). `keys`/`nkeys` (0..3) are set by the
 * caller before seq_add() and not changed until seq_remove(). A key repeated
 * within one entry counts once.
 */
struct seq_entry {
	uint64_t keys[3];
	int nkeys;
	/* private to the sequencer */
	int waiting;		/* number of keys where it is not the head */
	int state;		/* enum seq_state */
	TAILQ_ENTRY(seq_entry) ready;	/* on the ready list */
	struct seq_node node[3];	/* per-key FIFO links, no allocation */
};

struct seq *seq_new(void);
void seq_free(struct seq *s);

/*
 * Append `e` at the tail of each of its keys' FIFOs. If it heads all of them
 * (or has no keys) it is put on the ready list at once.
 * Returns 0, or -1 with errno ENOMEM when out of memory (nothing changed) or
 * EINVAL when nkeys is not 0..3.
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
 * a queued entry that never ran is allowed too), or be ready and not yet
 * taken. Removing an entry that is not held (SEQ_IDLE) aborts via fatalx().
 * Cannot fail; `e` is SEQ_IDLE afterwards and may be added again.
 */
void seq_remove(struct seq *s, struct seq_entry *e);

/* Counts for tests and status: entries held, distinct keys with a FIFO. */
size_t seq_count(const struct seq *s);
size_t seq_nkeys(const struct seq *s);
/* Entries ready and not yet taken by seq_next_ready(). */
size_t seq_nready(const struct seq *s);
/* The state of an entry this sequencer holds (SEQ_IDLE once removed). */
enum seq_state seq_entry_state(const struct seq_entry *e);

#endif
