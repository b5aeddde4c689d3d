/* The pending set: updates fetched and not finished, by id, in their per-key order. */
#include "pending.h"
#include "seqkeys.h"
#include "clock.h"
#include "log.h"
#include "u64map.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct pending {
	struct u64map byid;	/* update_id -> struct upd */
	struct seq *seq;
	struct pending_rules rules;
};

struct pending *pending_new(void)
{
	struct pending *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	u64map_init(&p->byid);
	if ((p->seq = seq_new()) == NULL) {
		free(p);
		return NULL;
	}
	return p;
}

static void upd_free(struct upd *u)
{
	free(u->json);
	free(u);
}

void pending_free(struct pending *p)
{
	size_t it = 0;
	uint64_t id;
	void *u;

	if (p == NULL)
		return;
	while (u64map_next(&p->byid, &it, &id, &u))
		upd_free(u);
	u64map_free(&p->byid);
	seq_free(p->seq);
	free(p);
}

void pending_set_rules(struct pending *p, const struct pending_rules *r)
{
	p->rules = *r;
}

enum pending_add pending_add(struct pending *p, const char *json, size_t len,
    int attempt, int valid, int64_t *id, struct upd **out)
{
	struct update_keys k;
	struct upd *u;

	*out = NULL;
	if ((valid ? keys_extract_raw_valid(json, len, &k) :
	    keys_extract_raw(json, len, &k)) != 0)
		return PENDING_BAD;
	*id = k.update_id;
	if (u64map_get(&p->byid, (uint64_t)k.update_id) != NULL)
		return PENDING_HELD;
	u = calloc(1, sizeof(*u));
	if (u == NULL || (u->json = malloc(len + 1)) == NULL) {
		free(u);
		fatalx("out of memory for update %lld", (long long)k.update_id);
	}
	memcpy(u->json, json, len);
	u->json[len] = '\0';
	u->id = k.update_id;
	u->de.id = k.update_id;
	u->len = len;
	u->attempt = attempt;
	u->type = k.type;
	u->fetched_ms = clock_ms();
	if (k.type != UPD_UNKNOWN && (p->rules.bypass & (1u << k.type)))
		u->se.nkeys = 0;
	else
		u->se.nkeys = seqkeys_for(&k, p->rules.sequentialize, u->se.keys);
	if (u64map_put(&p->byid, (uint64_t)u->id, u) != 0 || seq_add(p->seq, &u->se) != 0)
		fatalx("out of memory for update %lld", (long long)u->id);
	*out = u;
	return PENDING_NEW;
}

struct upd *pending_get(const struct pending *p, int64_t id)
{
	return u64map_get(&p->byid, (uint64_t)id);
}

void pending_remove(struct pending *p, struct upd *u)
{
	seq_remove(p->seq, &u->se);
	u64map_del(&p->byid, (uint64_t)u->id);
	upd_free(u);
}

struct upd *pending_next_ready(struct pending *p)
{
	struct seq_entry *e = seq_next_ready(p->seq);

	return e ? (struct upd *)((char *)e - offsetof(struct upd, se)) : NULL;
}

size_t pending_count(const struct pending *p)
{
	return p->byid.count;
}

struct upd *pending_walk(const struct pending *p, size_t *it)
{
	uint64_t id;
	void *u;

	return u64map_next(&p->byid, it, &id, &u) ? u : NULL;
}
