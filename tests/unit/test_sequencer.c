/* Unit tests for daemon/sequencer.c: fixed scenarios and a model-checked random walk. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sequencer.h"

#define A 0x0aULL
#define B 0x0bULL
#define C 0x0cULL

static void set_keys(struct seq_entry *e, int n, uint64_t k0, uint64_t k1, uint64_t k2)
{
	memset(e, 0, sizeof(*e));
	e->nkeys = n;
	e->keys[0] = k0;
	e->keys[1] = k1;
	e->keys[2] = k2;
}

static void add(struct seq *s, struct seq_entry *e)
{
	assert_int_equal(seq_add(s, e), 0);
}

static void assert_idle(const struct seq *s)
{
	assert_int_equal(seq_count(s), 0);
	assert_int_equal(seq_nkeys(s), 0);
	assert_int_equal(seq_nready(s), 0);
}

static void test_single_key_order(void **state)
{
	struct seq *s = seq_new();
	struct seq_entry e[5];
	int i;

	assert_non_null(s);
	for (i = 0; i < 5; i++) {
		set_keys(&e[i], 1, A, 0, 0);
		add(s, &e[i]);
	}
	assert_int_equal(seq_count(s), 5);
	assert_int_equal(seq_nkeys(s), 1);
	for (i = 0; i < 5; i++) {
		assert_ptr_equal(seq_next_ready(s), &e[i]);
		assert_int_equal(seq_entry_state(&e[i]), SEQ_RUNNING);
		assert_null(seq_next_ready(s));
		if (i + 1 < 5)
			assert_int_equal(seq_entry_state(&e[i + 1]), SEQ_WAITING);
		seq_remove(s, &e[i]);
		assert_int_equal(seq_entry_state(&e[i]), SEQ_IDLE);
	}
	assert_null(seq_next_ready(s));
	assert_idle(s);
	seq_free(s);
}

static void test_two_keys_independent(void **state)
{
	struct seq *s = seq_new();
	struct seq_entry a1, b1, a2;

	set_keys(&a1, 1, A, 0, 0);
	set_keys(&b1, 1, B, 0, 0);
	set_keys(&a2, 1, A, 0, 0);
	add(s, &a1);
	add(s, &b1);
	add(s, &a2);
	assert_int_equal(seq_nkeys(s), 2);
	assert_int_equal(seq_nready(s), 2);
	assert_ptr_equal(seq_next_ready(s), &a1);
	assert_ptr_equal(seq_next_ready(s), &b1);
	assert_null(seq_next_ready(s));
	seq_remove(s, &b1);		/* another key: a2 still waits */
	assert_null(seq_next_ready(s));
	assert_int_equal(seq_nkeys(s), 1);
	seq_remove(s, &a1);
	assert_ptr_equal(seq_next_ready(s), &a2);
	seq_remove(s, &a2);
	assert_idle(s);
	seq_free(s);
}

static void test_multi_key_waits_for_all(void **state)
{
	struct seq *s = seq_new();
	struct seq_entry a1, b1, ab, a2, c1;

	set_keys(&a1, 1, A, 0, 0);
	set_keys(&b1, 1, B, 0, 0);
	set_keys(&ab, 2, A, B, 0);
	set_keys(&a2, 1, A, 0, 0);
	set_keys(&c1, 1, C, 0, 0);
	add(s, &a1);
	add(s, &b1);
	add(s, &ab);
	add(s, &a2);
	add(s, &c1);
	assert_ptr_equal(seq_next_ready(s), &a1);
	assert_ptr_equal(seq_next_ready(s), &b1);
	assert_ptr_equal(seq_next_ready(s), &c1);
	assert_null(seq_next_ready(s));
	assert_int_equal(seq_entry_state(&ab), SEQ_WAITING);

	seq_remove(s, &a1);		/* ab now heads A but not B */
	assert_null(seq_next_ready(s));
	assert_int_equal(seq_entry_state(&ab), SEQ_WAITING);
	assert_int_equal(seq_entry_state(&a2), SEQ_WAITING);
	seq_remove(s, &b1);
	assert_ptr_equal(seq_next_ready(s), &ab);
	assert_null(seq_next_ready(s));	/* a2 is behind ab on A */
	seq_remove(s, &ab);
	assert_ptr_equal(seq_next_ready(s), &a2);
	seq_remove(s, &a2);
	seq_remove(s, &c1);
	assert_idle(s);
	seq_free(s);
}

static void test_no_key_entries(void **state)
{
	struct seq *s = seq_new();
	struct seq_entry a1, a2, n1, n2;

	set_keys(&a1, 1, A, 0, 0);
	set_keys(&a2, 1, A, 0, 0);
	set_keys(&n1, 0, 0, 0, 0);
	set_keys(&n2, 0, 0, 0, 0);
	add(s, &a1);
	add(s, &a2);
	add(s, &n1);
	add(s, &n2);
	assert_int_equal(seq_nkeys(s), 1);
	assert_ptr_equal(seq_next_ready(s), &a1);
	assert_ptr_equal(seq_next_ready(s), &n1);
	assert_ptr_equal(seq_next_ready(s), &n2);
	assert_null(seq_next_ready(s));
	seq_remove(s, &n2);
	seq_remove(s, &n1);
	assert_null(seq_next_ready(s));
	seq_remove(s, &a1);
	assert_ptr_equal(seq_next_ready(s), &a2);
	seq_remove(s, &a2);
	assert_idle(s);

	/* Only no-key entries: no FIFO is ever made. */
	add(s, &n1);
	assert_int_equal(seq_nkeys(s), 0);
	assert_int_equal(seq_count(s), 1);
	assert_ptr_equal(seq_next_ready(s), &n1);
	seq_remove(s, &n1);
	assert_idle(s);
	seq_free(s);
}

static void test_remove_waiting(void **state)
{
	struct seq *s = seq_new();
	struct seq_entry a1, a2, a3, x, b2;

	/* From the middle of one FIFO. */
	set_keys(&a1, 1, A, 0, 0);
	set_keys(&a2, 1, A, 0, 0);
	set_keys(&a3, 1, A, 0, 0);
	add(s, &a1);
	add(s, &a2);
	add(s, &a3);
	assert_ptr_equal(seq_next_ready(s), &a1);
	seq_remove(s, &a2);
	assert_int_equal(seq_entry_state(&a2), SEQ_IDLE);
	assert_null(seq_next_ready(s));
	seq_remove(s, &a1);
	assert_ptr_equal(seq_next_ready(s), &a3);
	seq_remove(s, &a3);
	assert_idle(s);

	/* From the tail, then the tail again. */
	add(s, &a1);
	add(s, &a2);
	add(s, &a3);
	seq_remove(s, &a3);
	seq_remove(s, &a2);
	assert_ptr_equal(seq_next_ready(s), &a1);
	seq_remove(s, &a1);
	assert_idle(s);

	/*
	 * x waits on A but heads B; b2 is behind x on B. Removing x lets b2
	 * move up and run although a1 still runs.
	 */
	set_keys(&x, 2, A, B, 0);
	set_keys(&b2, 1, B, 0, 0);
	add(s, &a1);
	add(s, &x);
	add(s, &b2);
	assert_ptr_equal(seq_next_ready(s), &a1);
	assert_null(seq_next_ready(s));
	seq_remove(s, &x);
	assert_ptr_equal(seq_next_ready(s), &b2);
	assert_int_equal(seq_nkeys(s), 2);
	seq_remove(s, &b2);
	seq_remove(s, &a1);
	assert_idle(s);
	seq_free(s);
}

static void test_remove_ready_not_taken(void **state)
{
	struct seq *s = seq_new();
	struct seq_entry a1, b1, n1, a2;

	set_keys(&a1, 1, A, 0, 0);
	set_keys(&b1, 1, B, 0, 0);
	set_keys(&n1, 0, 0, 0, 0);
	set_keys(&a2, 1, A, 0, 0);
	add(s, &a1);
	add(s, &b1);
	add(s, &n1);
	add(s, &a2);
	assert_int_equal(seq_nready(s), 3);
	seq_remove(s, &b1);		/* middle of the ready list */
	seq_remove(s, &a1);		/* its head; a2 becomes ready at the tail */
	assert_int_equal(seq_nready(s), 2);
	assert_ptr_equal(seq_next_ready(s), &n1);
	assert_ptr_equal(seq_next_ready(s), &a2);
	seq_remove(s, &a2);
	seq_remove(s, &n1);
	assert_idle(s);
	seq_free(s);
}

static void test_ready_order(void **state)
{
	struct seq *s = seq_new();
	struct seq_entry a1, b1, a2, b2, n1;

	set_keys(&a1, 1, A, 0, 0);
	set_keys(&b1, 1, B, 0, 0);
	set_keys(&a2, 1, A, 0, 0);
	set_keys(&b2, 1, B, 0, 0);
	set_keys(&n1, 0, 0, 0, 0);
	add(s, &a1);
	add(s, &b1);
	add(s, &a2);
	add(s, &b2);
	assert_ptr_equal(seq_next_ready(s), &a1);
	assert_ptr_equal(seq_next_ready(s), &b1);
	seq_remove(s, &b1);		/* b2 ready first */
	add(s, &n1);			/* then n1 */
	seq_remove(s, &a1);		/* then a2 */
	assert_ptr_equal(seq_next_ready(s), &b2);
	assert_ptr_equal(seq_next_ready(s), &n1);
	assert_ptr_equal(seq_next_ready(s), &a2);
	seq_remove(s, &a2);
	seq_remove(s, &b2);
	seq_remove(s, &n1);
	assert_idle(s);
	seq_free(s);
}

static void test_repeated_and_odd_keys(void **state)
{
	struct seq *s = seq_new();
	struct seq_entry d, z1, z2, m1, bad;

	/* A key repeated in one entry counts once, else it would wait on itself. */
	set_keys(&d, 3, A, A, A);
	add(s, &d);
	assert_int_equal(seq_nkeys(s), 1);
	assert_ptr_equal(seq_next_ready(s), &d);
	seq_remove(s, &d);
	assert_idle(s);

	/* 0 and all-ones are keys like any other. */
	set_keys(&z1, 2, 0, UINT64_MAX, 0);
	set_keys(&z2, 1, 0, 0, 0);
	set_keys(&m1, 1, UINT64_MAX, 0, 0);
	add(s, &z1);
	add(s, &z2);
	add(s, &m1);
	assert_int_equal(seq_nkeys(s), 2);
	assert_ptr_equal(seq_next_ready(s), &z1);
	assert_null(seq_next_ready(s));
	seq_remove(s, &z1);
	assert_ptr_equal(seq_next_ready(s), &z2);
	assert_ptr_equal(seq_next_ready(s), &m1);
	seq_remove(s, &m1);
	seq_remove(s, &z2);
	assert_idle(s);

	/* An entry can be added again once removed. */
	add(s, &z1);
	assert_ptr_equal(seq_next_ready(s), &z1);
	seq_remove(s, &z1);
	assert_idle(s);

	set_keys(&bad, 4, A, B, C);
	errno = 0;
	assert_int_equal(seq_add(s, &bad), -1);
	assert_int_equal(errno, EINVAL);
	bad.nkeys = -1;
	assert_int_equal(seq_add(s, &bad), -1);
	assert_idle(s);
	seq_free(s);
}

/* xorshift64*: small, seeded, the same sequence on every machine. */
static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dULL) >> 32) % n;
}

/* Many keys: the table grows, holds, and shrinks back. */
static void test_many_keys(void **state)
{
	enum { N = 50000 };
	struct seq *s = seq_new();
	struct seq_entry *e = calloc(N, sizeof(*e));
	int *order = calloc(N, sizeof(*order));
	int i, j, t;

	assert_non_null(e);
	assert_non_null(order);
	rng_state = 42;
	for (i = 0; i < N; i++) {
		/* Pairs share a key: i and i ^ 1 both use key i / 2 * 7. */
		set_keys(&e[i], 2, (uint64_t)(i / 2) * 7, (uint64_t)i << 40 | 1, 0);
		add(s, &e[i]);
		order[i] = i;
	}
	assert_int_equal(seq_count(s), N);
	assert_int_equal(seq_nkeys(s), N / 2 + N);
	assert_int_equal(seq_nready(s), N / 2);
	for (i = N - 1; i > 0; i--) {
		j = (int)rnd((uint32_t)i + 1);
		t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	/* Remove in random order, whatever state each is in. */
	for (i = 0; i < N; i++) {
		int k = order[i];

		seq_remove(s, &e[k]);
		if ((k & 1) == 0 && seq_entry_state(&e[k + 1]) != SEQ_IDLE)
			assert_int_equal(seq_entry_state(&e[k + 1]), SEQ_READY);
	}
	assert_idle(s);
	assert_null(seq_next_ready(s));
	free(order);
	free(e);
	seq_free(s);
}

/*
 * The random walk. The reference model keeps, per key, the plain list of
 * entry ids holding it in add order; an entry may run iff it is first in
 * every list. After each step the sequencer's state of every entry must
 * equal the model's.
 */
#define ROUNDS 2000
#define MAX_OPS 300
#define MAX_KEYS 64

enum { M_UNUSED, M_WAITING, M_READY, M_RUNNING, M_DONE, M_CANCELLED };

struct mentry {
	struct seq_entry e;
	int state;
	int nk;
	int k[3];		/* model key indexes, deduplicated */
	int ready_step;		/* step at which it became runnable */
};

struct model {
	struct mentry ent[MAX_OPS];
	int nent;
	int list[MAX_KEYS][MAX_OPS];
	int len[MAX_KEYS];
	int last_started[MAX_KEYS];
	int nkeys;		/* key space of this round */
	int live;
	int step;
	uint64_t seed;
};

static uint64_t key_value(int k)
{
	/* Includes 0 and all-ones; the rest spread over the 64 bits. */
	if (k == 0)
		return 0;
	if (k == 1)
		return UINT64_MAX;
	return (uint64_t)k * 0x100000001ULL;
}

static int model_heads_all(const struct model *m, int id)
{
	const struct mentry *me = &m->ent[id];
	int i;

	for (i = 0; i < me->nk; i++)
		if (m->list[me->k[i]][0] != id)
			return 0;
	return 1;
}

static void model_unlink(struct model *m, int id)
{
	struct mentry *me = &m->ent[id];
	int i, j, k;

	for (i = 0; i < me->nk; i++) {
		k = me->k[i];
		for (j = 0; j < m->len[k] && m->list[k][j] != id; j++)
			;
		if (j == m->len[k])
			fail_msg("seed %llu: model lost entry %d",
			    (unsigned long long)m->seed, id);
		memmove(&m->list[k][j], &m->list[k][j + 1],
		    (size_t)(m->len[k] - j - 1) * sizeof(int));
		m->len[k]--;
	}
	m->live--;
}

static const int to_seq_state[] = {
	[M_UNUSED] = SEQ_IDLE, [M_WAITING] = SEQ_WAITING, [M_READY] = SEQ_READY,
	[M_RUNNING] = SEQ_RUNNING, [M_DONE] = SEQ_IDLE, [M_CANCELLED] = SEQ_IDLE,
};

/* Promote newly runnable entries, then compare everything with the sequencer. */
static void model_check(struct model *m, const struct seq *s)
{
	int id, k, i, nready = 0, nonempty = 0, running;

	m->step++;
	for (id = 0; id < m->nent; id++) {
		struct mentry *me = &m->ent[id];
		int heads = model_heads_all(m, id);

		if (me->state == M_WAITING && heads) {
			me->state = M_READY;
			me->ready_step = m->step;
		} else if ((me->state == M_READY || me->state == M_RUNNING) && !heads) {
			fail_msg("seed %llu: entry %d lost its place",
			    (unsigned long long)m->seed, id);
		}
		if (me->state == M_READY)
			nready++;
		if ((int)seq_entry_state(&me->e) != to_seq_state[me->state])
			fail_msg("seed %llu step %d: entry %d is %d in the "
			    "sequencer, %d in the model",
			    (unsigned long long)m->seed, m->step, id,
			    (int)seq_entry_state(&me->e), me->state);
	}
	for (k = 0; k < m->nkeys; k++) {
		if (m->len[k] > 0)
			nonempty++;
		/* No two running entries share a key. */
		for (running = 0, i = 0; i < m->len[k]; i++)
			running += m->ent[m->list[k][i]].state == M_RUNNING;
		if (running > 1)
			fail_msg("seed %llu: %d entries run on key %d",
			    (unsigned long long)m->seed, running, k);
	}
	assert_int_equal(seq_nready(s), nready);
	assert_int_equal(seq_count(s), m->live);
	assert_int_equal(seq_nkeys(s), nonempty);
	if (m->live == 0) {
		assert_int_equal(seq_count(s), 0);
		assert_int_equal(seq_nkeys(s), 0);
	}
}

static void op_add(struct model *m, struct seq *s)
{
	struct mentry *me = &m->ent[m->nent];
	int id = m->nent++, i, j, k, dup;

	memset(me, 0, sizeof(*me));
	memset(&me->e, 0xa5, sizeof(me->e));	/* the sequencer must not rely on zeroes */
	me->e.nkeys = (int)rnd(4);
	for (i = 0; i < me->e.nkeys; i++) {
		k = (int)rnd((uint32_t)m->nkeys);
		me->e.keys[i] = key_value(k);
		for (dup = 0, j = 0; j < me->nk; j++)
			dup |= me->k[j] == k;
		if (!dup) {
			me->k[me->nk++] = k;
			m->list[k][m->len[k]++] = id;
		}
	}
	me->state = M_WAITING;
	m->live++;
	assert_int_equal(seq_add(s, &me->e), 0);
}

static void op_take(struct model *m, struct seq *s)
{
	struct seq_entry *e = seq_next_ready(s);
	struct mentry *me;
	int id, i, oldest = -1;

	for (id = 0; id < m->nent; id++)
		if (m->ent[id].state == M_READY &&
		    (oldest == -1 || m->ent[id].ready_step < oldest))
			oldest = m->ent[id].ready_step;
	if (e == NULL) {
		if (oldest != -1)
			fail_msg("seed %llu: nothing ready, the model has some",
			    (unsigned long long)m->seed);
		return;
	}
	me = (struct mentry *)((char *)e - offsetof(struct mentry, e));
	id = (int)(me - m->ent);
	if (me->state != M_READY)
		fail_msg("seed %llu: got entry %d in model state %d",
		    (unsigned long long)m->seed, id, me->state);
	/* Ready entries come out in the order they became ready. */
	if (me->ready_step != oldest)
		fail_msg("seed %llu: entry %d ready at step %d, one older at %d",
		    (unsigned long long)m->seed, id, me->ready_step, oldest);
	/* Per key, entries start in add order. */
	for (i = 0; i < me->nk; i++) {
		if (m->last_started[me->k[i]] >= id)
			fail_msg("seed %llu: entry %d started after %d on key %d",
			    (unsigned long long)m->seed, id,
			    m->last_started[me->k[i]], me->k[i]);
		m->last_started[me->k[i]] = id;
	}
	me->state = M_RUNNING;
}

/* Pick a random entry in `state`, -1 if none. */
static int pick(const struct model *m, int state)
{
	int id, n = 0, want;

	for (id = 0; id < m->nent; id++)
		n += m->ent[id].state == state;
	if (n == 0)
		return -1;
	want = (int)rnd((uint32_t)n);
	for (id = 0; id < m->nent; id++)
		if (m->ent[id].state == state && want-- == 0)
			return id;
	return -1;
}

static void op_finish(struct model *m, struct seq *s, int id, int how)
{
	seq_remove(s, &m->ent[id].e);
	model_unlink(m, id);
	m->ent[id].state = how;
}

static void run_round(struct seq *s, uint64_t seed)
{
	static struct model m;
	int op, id, nops, p_add, r, k;

	memset(&m, 0, sizeof(m));
	m.seed = seed;
	rng_state = seed * 0x9e3779b97f4a7c15ULL + 1;
	for (k = 0; k < MAX_KEYS; k++)
		m.last_started[k] = -1;
	/* Mostly tiny key spaces (heavy contention), sometimes a wide one. */
	m.nkeys = rnd(8) == 0 ? MAX_KEYS : 1 + (int)rnd(6);
	nops = 100 + (int)rnd(MAX_OPS - 100);
	p_add = 20 + (int)rnd(40);

	for (op = 0; op < nops; op++) {
		r = (int)rnd(100);
		if (r < p_add) {
			if (m.nent < MAX_OPS)
				op_add(&m, s);
		} else if (r < p_add + (100 - p_add) * 4 / 10) {
			op_take(&m, s);
		} else if (r < 92) {
			if ((id = pick(&m, M_RUNNING)) >= 0)
				op_finish(&m, s, id, M_DONE);
		} else {
			/* Cancel one that never ran, waiting or ready. */
			id = pick(&m, rnd(2) ? M_WAITING : M_READY);
			if (id >= 0)
				op_finish(&m, s, id, M_CANCELLED);
		}
		model_check(&m, s);
	}

	/* Drain: everything still held must run, in some order, and finish. */
	for (;;) {
		while (seq_nready(s) > 0) {
			op_take(&m, s);
			model_check(&m, s);
		}
		if ((id = pick(&m, M_RUNNING)) < 0)
			break;
		op_finish(&m, s, id, M_DONE);
		model_check(&m, s);
	}
	for (id = 0; id < m.nent; id++)
		if (m.ent[id].state != M_DONE && m.ent[id].state != M_CANCELLED)
			fail_msg("seed %llu: entry %d never ran (state %d)",
			    (unsigned long long)seed, id, m.ent[id].state);
	assert_null(seq_next_ready(s));
	assert_idle(s);
}

static void test_random_walk(void **state)
{
	struct seq *s = seq_new();
	uint64_t seed;

	assert_non_null(s);
	/* One sequencer for all rounds: it must be as good as new when idle. */
	for (seed = 1; seed <= ROUNDS; seed++)
		run_round(s, seed);
	seq_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_key_order),
		cmocka_unit_test(test_two_keys_independent),
		cmocka_unit_test(test_multi_key_waits_for_all),
		cmocka_unit_test(test_no_key_entries),
		cmocka_unit_test(test_remove_waiting),
		cmocka_unit_test(test_remove_ready_not_taken),
		cmocka_unit_test(test_ready_order),
		cmocka_unit_test(test_repeated_and_odd_keys),
		cmocka_unit_test(test_many_keys),
		cmocka_unit_test(test_random_walk),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
