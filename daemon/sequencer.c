/* The sequencer: per-key FIFOs deciding which pending updates may run. */
#include "sequencer.h"

#include <errno.h>
#include <stdlib.h>

#include "log.h"

/*
 * Invariants:
 * - every key of a held entry has exactly one slot in the table, whose FIFO
 *   (head..tail through seq_node links) lists the entries holding that key in
 *   the order they were added; a slot with an empty FIFO does not exist;
 * - e->waiting counts e's linked nodes that are not the head of their FIFO;
 *   e is READY or RUNNING exactly when waiting == 0;
 * - the ready list holds the READY entries, oldest first.
 *
 * The table is open addressing with linear probing and backward-shift
 * deletion (no tombstones), so lookups stay short however keys come and go.
 * It is kept between 1/16 and 1/2 full (never below SEQ_MIN_CAP slots), so
 * memory follows the number of keys pending.
 */
#define SEQ_MIN_BITS 4
#define SEQ_MIN_CAP ((size_t)1 << SEQ_MIN_BITS)

/*
 * One key's FIFO. Its links are written out by hand, not <sys/queue.h>: a
 * slot moves when the table grows or shrinks, and a TAILQ head cannot move
 * (its first node points back into it).
 */
struct seq_slot {
	uint64_t key;
	struct seq_node *head, *tail;	/* head == NULL: empty slot */
};

struct seq {
	struct seq_slot *slots;
	size_t cap;			/* power of two */
	unsigned bits;			/* cap == 1 << bits */
	size_t nkeys;			/* slots in use */
	size_t count;			/* entries held */
	size_t nready;
	TAILQ_HEAD(, seq_entry) ready;
};

static size_t slot_home(const struct seq *s, uint64_t key);
static struct seq_slot *slot_find(struct seq *s, uint64_t key);
static struct seq_slot *slot_get(struct seq *s, uint64_t key);
static void slot_delete(struct seq *s, struct seq_slot *slot);
static int table_resize(struct seq *s, unsigned bits);
static void ready_push(struct seq *s, struct seq_entry *e);
static void ready_unlink(struct seq *s, struct seq_entry *e);
static void node_unlink(struct seq *s, struct seq_node *n, uint64_t key);

struct seq *seq_new(void)
{
	struct seq *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	TAILQ_INIT(&s->ready);
	if (table_resize(s, SEQ_MIN_BITS) == -1) {
		free(s);
		return NULL;
	}
	return s;
}

void seq_free(struct seq *s)
{
	if (s == NULL)
		return;
	free(s->slots);
	free(s);
}

int seq_add(struct seq *s, struct seq_entry *e)
{
	struct seq_slot *slot;
	struct seq_node *n;
	unsigned bits = s->bits;
	int i, j, dup;

	if (e->nkeys < 0 || e->nkeys > 3) {
		errno = EINVAL;
		return -1;
	}
	/* Make room first so that linking below cannot fail half-way. */
	while ((s->nkeys + (size_t)e->nkeys) * 2 > ((size_t)1 << bits))
		bits++;
	if (bits != s->bits && table_resize(s, bits) == -1)
		return -1;

	e->waiting = 0;
	for (i = 0; i < e->nkeys; i++) {
		n = &e->node[i];
		n->prev = n->next = NULL;
		n->entry = NULL;
		for (dup = 0, j = 0; j < i; j++)
			dup |= e->keys[j] == e->keys[i];
		if (dup)
			continue;
		n->entry = e;
		slot = slot_get(s, e->keys[i]);
		if (slot->head == NULL) {
			slot->head = slot->tail = n;
		} else {
			n->prev = slot->tail;
			slot->tail->next = n;
			slot->tail = n;
			e->waiting++;
		}
	}
	s->count++;
	if (e->waiting == 0)
		ready_push(s, e);
	else
		e->state = SEQ_WAITING;
	return 0;
}

struct seq_entry *seq_next_ready(struct seq *s)
{
	struct seq_entry *e = TAILQ_FIRST(&s->ready);

	if (e == NULL)
		return NULL;
	ready_unlink(s, e);
	e->state = SEQ_RUNNING;
	return e;
}

void seq_remove(struct seq *s, struct seq_entry *e)
{
	int i;

	switch (e->state) {
	case SEQ_READY:
		ready_unlink(s, e);
		break;
	case SEQ_WAITING:
	case SEQ_RUNNING:
		break;
	default:
		fatalx("entry %p is not in the sequencer (state %d)",
		    (void *)e, e->state);
	}
	for (i = 0; i < e->nkeys; i++)
		if (e->node[i].entry != NULL)
			node_unlink(s, &e->node[i], e->keys[i]);
	e->state = SEQ_IDLE;
	s->count--;
	/* Shrinking is optional: if it cannot allocate, the table stays. */
	if (s->bits > SEQ_MIN_BITS && s->nkeys * 16 < s->cap)
		(void)table_resize(s, s->bits - 1);
}

size_t seq_count(const struct seq *s)
{
	return s->count;
}

size_t seq_nkeys(const struct seq *s)
{
	return s->nkeys;
}

size_t seq_nready(const struct seq *s)
{
	return s->nready;
}

enum seq_state seq_entry_state(const struct seq_entry *e)
{
	return (enum seq_state)e->state;
}

/*
 * Take `n` out of its FIFO. When it was the head, its successor moves up one
 * place and may now head all its FIFOs.
 */
static void node_unlink(struct seq *s, struct seq_node *n, uint64_t key)
{
	struct seq_slot *slot = NULL;
	struct seq_node *next = n->next;
	struct seq_entry *succ;

	if (n->prev == NULL || next == NULL) {
		if ((slot = slot_find(s, key)) == NULL)
			fatalx("key %016llx of a held entry has no FIFO",
			    (unsigned long long)key);
	}
	if (n->prev != NULL)
		n->prev->next = next;
	else
		slot->head = next;
	if (next != NULL)
		next->prev = n->prev;
	else
		slot->tail = n->prev;

	if (n->prev == NULL && next != NULL) {
		succ = next->entry;
		if (--succ->waiting == 0)
			ready_push(s, succ);
	}
	if (slot != NULL && slot->head == NULL)
		slot_delete(s, slot);
	n->prev = n->next = NULL;
}

static void ready_push(struct seq *s, struct seq_entry *e)
{
	e->state = SEQ_READY;
	TAILQ_INSERT_TAIL(&s->ready, e, ready);
	s->nready++;
}

static void ready_unlink(struct seq *s, struct seq_entry *e)
{
	TAILQ_REMOVE(&s->ready, e, ready);
	s->nready--;
}

/* Fibonacci hashing: the top bits of key * 2^64/phi, good for small ids too. */
static size_t slot_home(const struct seq *s, uint64_t key)
{
	return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> (64 - s->bits));
}

static struct seq_slot *slot_find(struct seq *s, uint64_t key)
{
	size_t mask = s->cap - 1, i = slot_home(s, key);

	for (; s->slots[i].head != NULL; i = (i + 1) & mask)
		if (s->slots[i].key == key)
			return &s->slots[i];
	return NULL;
}

/* The key's slot, claiming an empty one; the caller made sure there is room. */
static struct seq_slot *slot_get(struct seq *s, uint64_t key)
{
	size_t mask = s->cap - 1, i = slot_home(s, key);

	for (; s->slots[i].head != NULL; i = (i + 1) & mask)
		if (s->slots[i].key == key)
			return &s->slots[i];
	s->slots[i].key = key;
	s->nkeys++;
	return &s->slots[i];
}

/*
 * Empty `slot`, then pull back each later slot of the probe run that may
 * live at the hole (its home is not cyclically after the hole), so that
 * every key stays reachable from its home without tombstones.
 */
static void slot_delete(struct seq *s, struct seq_slot *slot)
{
	size_t mask = s->cap - 1;
	size_t i = (size_t)(slot - s->slots), j = i, home;

	for (;;) {
		j = (j + 1) & mask;
		if (s->slots[j].head == NULL)
			break;
		home = slot_home(s, s->slots[j].key);
		if (((j - home) & mask) >= ((j - i) & mask)) {
			s->slots[i] = s->slots[j];
			i = j;
		}
	}
	s->slots[i].head = s->slots[i].tail = NULL;
	s->nkeys--;
}

static int table_resize(struct seq *s, unsigned bits)
{
	struct seq_slot *old = s->slots, *slot;
	size_t oldcap = s->cap, i;

	if (bits >= 8 * sizeof(size_t) - 6) {
		errno = ENOMEM;
		return -1;
	}
	if ((s->slots = calloc((size_t)1 << bits, sizeof(*s->slots))) == NULL) {
		s->slots = old;
		return -1;
	}
	s->cap = (size_t)1 << bits;
	s->bits = bits;
	s->nkeys = 0;
	for (i = 0; i < oldcap; i++) {
		if (old[i].head == NULL)
			continue;
		slot = slot_get(s, old[i].key);
		slot->head = old[i].head;
		slot->tail = old[i].tail;
	}
	free(old);
	return 0;
}
