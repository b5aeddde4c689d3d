/* Open-addressing hash map from int64 keys to int64 values (O(1) stats lookups). */
#ifndef FAKEAPI_HMAP_H
#define FAKEAPI_HMAP_H

#include <stdint.h>
#include <stddef.h>

struct hmap_slot {
	int64_t key;
	int64_t val;
	int used;
};

struct hmap {
	struct hmap_slot *slots;
	size_t cap;	/* power of two */
	size_t len;
};

void hmap_init(struct hmap *m);
void hmap_free(struct hmap *m);
void hmap_clear(struct hmap *m);
/* Pointer to the value of key, or NULL. */
int64_t *hmap_get(struct hmap *m, int64_t key);
/* Pointer to the value of key, inserted with value dflt if absent. */
int64_t *hmap_put(struct hmap *m, int64_t key, int64_t dflt);

#endif
