/* Open-addressing hash map from int64 keys to int64 values (O(1) stats lookups). */
#include "hmap.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

void
hmap_init(struct hmap *m)
{
	m->cap = 64;
	m->len = 0;
	m->slots = util_xcalloc(m->cap, sizeof(*m->slots));
}

void
hmap_free(struct hmap *m)
{
	free(m->slots);
	m->slots = NULL;
	m->cap = m->len = 0;
}

void
hmap_clear(struct hmap *m)
{
	memset(m->slots, 0, m->cap * sizeof(*m->slots));
	m->len = 0;
}

static struct hmap_slot *
find(struct hmap_slot *slots, size_t cap, int64_t key)
{
	size_t i = util_hash_u64((uint64_t)key) & (cap - 1);

	while (slots[i].used && slots[i].key != key)
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

int64_t *
hmap_get(struct hmap *m, int64_t key)
{
	struct hmap_slot *s = find(m->slots, m->cap, key);

	return s->used ? &s->val : NULL;
}

static void
grow(struct hmap *m)
{
	size_t ncap = m->cap * 2;
	struct hmap_slot *ns = util_xcalloc(ncap, sizeof(*ns));

	for (size_t i = 0; i < m->cap; i++) {
		if (m->slots[i].used)
			*find(ns, ncap, m->slots[i].key) = m->slots[i];
	}
	free(m->slots);
	m->slots = ns;
	m->cap = ncap;
}

int64_t *
hmap_put(struct hmap *m, int64_t key, int64_t dflt)
{
	struct hmap_slot *s;

	if ((m->len + 1) * 4 > m->cap * 3)
		grow(m);
	s = find(m->slots, m->cap, key);
	if (!s->used) {
		s->used = 1;
		s->key = key;
		s->val = dflt;
		m->len++;
	}
	return &s->val;
}
