/* A hash map from 64-bit keys to pointers (open addressing; key 0 kept aside). */
#include "u64map.h"

#include <stdlib.h>

static size_t slot_of(uint64_t k, size_t cap)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	return (size_t)k & (cap - 1);
}

void u64map_init(struct u64map *m)
{
	m->keys = NULL;
	m->vals = NULL;
	m->cap = m->count = 0;
	m->has_zero = 0;
	m->zero_val = NULL;
}

void u64map_free(struct u64map *m)
{
	free(m->keys);
	free(m->vals);
	u64map_init(m);
}

static int grow(struct u64map *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 64;
	uint64_t *nk = calloc(ncap, sizeof(*nk));
	void **nv = calloc(ncap, sizeof(*nv));

	if (nk == NULL || nv == NULL) {
		free(nk);
		free(nv);
		return -1;
	}
	for (size_t i = 0; i < m->cap; i++) {
		size_t j;

		if (m->keys[i] == 0)
			continue;
		for (j = slot_of(m->keys[i], ncap); nk[j] != 0; j = (j + 1) & (ncap - 1))
			;
		nk[j] = m->keys[i];
		nv[j] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	m->keys = nk;
	m->vals = nv;
	m->cap = ncap;
	return 0;
}

int u64map_put(struct u64map *m, uint64_t key, void *val)
{
	size_t i;

	if (key == 0) {
		m->count += !m->has_zero;
		m->has_zero = 1;
		m->zero_val = val;
		return 0;
	}
	if ((m->count + 1) * 4 > m->cap * 3 && grow(m) != 0)
		return -1;
	for (i = slot_of(key, m->cap); m->keys[i] != 0; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == key) {
			m->vals[i] = val;
			return 0;
		}
	}
	m->keys[i] = key;
	m->vals[i] = val;
	m->count++;
	return 0;
}

void *u64map_get(const struct u64map *m, uint64_t key)
{
	if (key == 0)
		return m->has_zero ? m->zero_val : NULL;
	if (m->cap == 0)
		return NULL;
	for (size_t i = slot_of(key, m->cap); m->keys[i] != 0;
	    i = (i + 1) & (m->cap - 1))
		if (m->keys[i] == key)
			return m->vals[i];
	return NULL;
}

void *u64map_del(struct u64map *m, uint64_t key)
{
	size_t i, j, mask = m->cap - 1;
	void *val;

	if (key == 0) {
		val = m->has_zero ? m->zero_val : NULL;
		m->count -= m->has_zero;
		m->has_zero = 0;
		m->zero_val = NULL;
		return val;
	}
	if (m->cap == 0)
		return NULL;
	for (i = slot_of(key, m->cap); m->keys[i] != key; i = (i + 1) & mask)
		if (m->keys[i] == 0)
			return NULL;
	val = m->vals[i];
	/* Backward-shift deletion keeps every probe chain unbroken. */
	for (j = (i + 1) & mask; m->keys[j] != 0; j = (j + 1) & mask) {
		size_t home = slot_of(m->keys[j], m->cap);

		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->keys[i] = m->keys[j];
			m->vals[i] = m->vals[j];
			i = j;
		}
	}
	m->keys[i] = 0;
	m->vals[i] = NULL;
	m->count--;
	return val;
}

int u64map_next(const struct u64map *m, size_t *it, uint64_t *key, void **val)
{
	for (; *it < m->cap; (*it)++) {
		if (m->keys[*it] != 0) {
			*key = m->keys[*it];
			*val = m->vals[*it];
			(*it)++;
			return 1;
		}
	}
	if (*it == m->cap && m->has_zero) {
		*key = 0;
		*val = m->zero_val;
		(*it)++;
		return 1;
	}
	return 0;
}
