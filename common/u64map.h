/* A hash map from non-zero 64-bit keys to pointers (open addressing). */
#ifndef TGRUN_U64MAP_H
#define TGRUN_U64MAP_H

#include <stddef.h>
#include <stdint.h>

struct u64map {
	uint64_t *keys;		/* 0 = empty slot */
	void **vals;
	size_t cap;		/* power of two, or 0 */
	size_t count;
};

void u64map_init(struct u64map *m);
void u64map_free(struct u64map *m);
/* Insert or replace. Key 0 is reserved. Returns 0, or -1 out of memory. */
int u64map_put(struct u64map *m, uint64_t key, void *val)
	__attribute__((warn_unused_result));
void *u64map_get(const struct u64map *m, uint64_t key);
/* Remove and return the value, NULL if absent. */
void *u64map_del(struct u64map *m, uint64_t key);

#endif
