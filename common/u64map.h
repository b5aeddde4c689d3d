/* A hash map from 64-bit keys to pointers (open addressing; key 0 kept aside). */
#ifndef TGRUN_U64MAP_H
#define TGRUN_U64MAP_H

#include <stddef.h>
#include <stdint.h>

struct u64map {
	uint64_t *keys;		/* 0 = empty slot */
	void **vals;
	size_t cap;		/* power of two, or 0 */
	size_t count;		/* entries, key 0 included */
	int has_zero;		/* key 0 lives here, not in the table */
	void *zero_val;
};

void u64map_init(struct u64map *m);
void u64map_free(struct u64map *m);
/* Insert or replace (any key, 0 too). Returns 0, or -1 out of memory. */
int u64map_put(struct u64map *m, uint64_t key, void *val)
	__attribute__((warn_unused_result));
void *u64map_get(const struct u64map *m, uint64_t key);
/* Remove and return the value, NULL if absent. */
void *u64map_del(struct u64map *m, uint64_t key);
/*
 * Walk the entries: start with *it = 0; each call stores the next entry in
 * `key`/`val` and returns 1, or returns 0 at the end. The map must not change
 * during the walk.
 */
int u64map_next(const struct u64map *m, size_t *it, uint64_t *key, void **val);

#endif
