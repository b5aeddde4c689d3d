/* The JetStream journal store's dead letters: a KV bucket, read through its stream. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"
#include "store_js_int.h"

int sjs_dead_letter(struct store *st, int64_t id, int attempts, const char *error)
{
	struct sjs *s = S(st);
	struct entry *e = u64map_get(&s->pend, (uint64_t)id);
	char buf[40];

	if (e == NULL) {
		s->full = 0;
		snprintf(s->errmsg, sizeof(s->errmsg), "update %lld is not in the journal",
		    (long long)id);
		log_warn("journal stream %s: dead-letter update %lld: not in the journal",
		    s->stream, (long long)id);
		errno = ENOENT;
		return -1;
	}
	if (jsu_dead_put(s->dead, id, attempts, error, e->body, e->len, s->errmsg,
	    sizeof(s->errmsg)) == -1) {
		sjs_warn(s);
		return -1;
	}
	sjs_reset_acks(s);
	snprintf(buf, sizeof(buf), "%lld dead", (long long)id);
	if (sjs_publish(s, s->subj_done, NULL, 0, buf, strlen(buf)) == -1 ||
	    sjs_publish_wait(s, "dead-letter an update") == -1)
		return -1;
	sjs_drop_entry(s, id);
	sjs_clear_ok(s);
	return 0;
}

struct idlist {
	int64_t *ids;
	int64_t n, cap;
};

static int collect_id(void *arg, const char *key)
{
	struct idlist *l = arg;
	int64_t *p;

	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		p = realloc(l->ids, (size_t)l->cap * sizeof(*p));
		if (p == NULL)
			return -1;
		l->ids = p;
	}
	l->ids[l->n++] = strtoll(key, NULL, 10);
	return 0;
}

/* The dead letters' ids in order, or one id; *n = -1 on failure. */
static int64_t *dead_ids(struct sjs *s, int64_t one, int64_t *n)
{
	struct idlist l = { NULL, 0, 0 };

	*n = -1;
	if (one != STORE_ALL) {
		if (collect_id(&l, "0") == 0) {
			l.ids[0] = one;
			*n = 1;
		}
		return l.ids;
	}
	if (jsu_kv_keys(s->js, s->bucket, s->timeout_ms, collect_id, &l, s->errmsg,
	    sizeof(s->errmsg)) != 0) {
		log_warn("journal stream %s: dead letters: %s", s->stream, s->errmsg);
		free(l.ids);
		return NULL;
	}
	if (l.ids == NULL && collect_id(&l, "0") == 0)
		l.n = 0;
	if (l.ids != NULL) {
		qsort(l.ids, (size_t)l.n, sizeof(*l.ids), sjs_cmp_id);
		*n = l.n;
	}
	return l.ids;
}

/* One dead letter, decoded: 1 (and *d filled, *json to json_decref), 0 absent, -1. */
static int dead_read(struct sjs *s, int64_t id, struct store_dead *d, json_t **json,
    uint64_t *rev)
{
	natsMsg *m = NULL;
	json_error_t je;
	json_t *o, *b;
	char key[24];
	int got;

	snprintf(key, sizeof(key), "%lld", (long long)id);
	got = jsu_kv_get(s->js, s->bucket, key, &m, s->errmsg, sizeof(s->errmsg));
	if (got == -1)
		log_warn("journal stream %s: dead letter: %s", s->stream, s->errmsg);
	if (got != 1)
		return got;
	o = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, &je);
	if (rev != NULL)
		*rev = natsMsg_GetSequence(m);
	natsMsg_Destroy(m);
	if (o == NULL || !json_is_object(o)) {
		json_decref(o);
		sjs_seterr(s, "dead letter %s: not the JSON we write", key);
		return -1;
	}
	b = json_object_get(o, "body");
	d->update_id = id;
	d->attempts = (int)json_integer_value(json_object_get(o, "attempts"));
	d->error = json_string_value(json_object_get(o, "error"));
	if (d->error == NULL)
		d->error = "";
	d->died_at = json_integer_value(json_object_get(o, "died_at"));
	d->body = json_string_value(b) != NULL ? json_string_value(b) : "";
	d->len = json_string_value(b) != NULL ? json_string_length(b) : 0;
	*json = o;
	return 1;
}

int sjs_dead_list(struct store *st, store_dead_cb cb, void *arg)
{
	struct sjs *s = S(st);
	struct store_dead d;
	int64_t n, *ids = dead_ids(s, STORE_ALL, &n);
	json_t *o;
	int r = 0, got;

	if (ids == NULL)
		return -1;
	for (int64_t i = 0; i < n && r == 0; i++) {
		got = dead_read(s, ids[i], &d, &o, NULL);
		if (got == -1) {
			r = -1;
			break;
		}
		if (got == 1) {
			r = cb(arg, &d);
			json_decref(o);
		}
	}
	free(ids);
	if (r != -1)
		sjs_clear_ok(s);
	return r;
}

int sjs_dead_get(struct store *st, int64_t id, store_dead_cb cb, void *arg)
{
	struct sjs *s = S(st);
	struct store_dead d;
	json_t *o;
	int got = dead_read(s, id, &d, &o, NULL);

	if (got == 1) {
		(void)cb(arg, &d);
		json_decref(o);
	}
	if (got != -1)
		sjs_clear_ok(s);
	return got;
}

static int dead_forget(struct sjs *s, int64_t id)
{
	char key[24];
	natsStatus st;

	snprintf(key, sizeof(key), "%lld", (long long)id);
	st = kvStore_Purge(s->dead, key, NULL);
	if (st != NATS_OK) {
		jsu_errf(s->errmsg, sizeof(s->errmsg), "kvStore_Purge", key, st, 0);
		log_warn("journal stream %s: dead letter: %s", s->stream, s->errmsg);
		return -1;
	}
	return 0;
}

/*
 * Back into the journal: a new upd message whose id is not the update_id
 * alone (that one may still be in the duplicate window), then out of the bucket.
 */
int64_t sjs_dead_retry(struct store *st, int64_t id)
{
	struct sjs *s = S(st);
	struct store_dead d;
	int64_t n, moved = 0, off, *ids = dead_ids(s, id, &n);
	const struct ack *a;
	char mid[48];
	uint64_t rev;
	json_t *o;
	int got;

	if (ids == NULL)
		return -1;
	if (sjs_offset(st, &off) == -1)
		goto fail;
	for (int64_t i = 0; i < n; i++) {
		got = dead_read(s, ids[i], &d, &o, &rev);
		if (got == -1)
			goto fail;
		if (got == 0)
			continue;
		sjs_reset_acks(s);
		snprintf(mid, sizeof(mid), "%lld.%llu", (long long)ids[i], (unsigned long long)rev);
		if (sjs_publish(s, s->subj_upd, mid, off, d.body, d.len) == -1 ||
		    sjs_publish_wait(s, "retry a dead letter") == -1) {
			json_decref(o);
			goto fail;
		}
		pthread_mutex_lock(&s->mu);
		a = sjs_find_ack(s, ids[i], 0);
		if (u64map_get(&s->pend, (uint64_t)ids[i]) == NULL &&
		    sjs_add_entry(s, ids[i], a != NULL ? a->seq : 0, d.body, d.len) == -1)
			log_err("journal stream %s: out of memory for update %lld",
			    s->stream, (long long)ids[i]);
		pthread_mutex_unlock(&s->mu);
		json_decref(o);
		if (dead_forget(s, ids[i]) == -1)
			goto fail;
		moved++;
	}
	free(ids);
	sjs_clear_ok(s);
	return moved;
fail:
	free(ids);
	return -1;
}

int64_t sjs_dead_drop(struct store *st, int64_t id)
{
	struct sjs *s = S(st);
	struct store_dead d;
	int64_t n, dropped = 0, *ids = dead_ids(s, id, &n);
	json_t *o;
	int got;

	if (ids == NULL)
		return -1;
	for (int64_t i = 0; i < n; i++) {
		got = dead_read(s, ids[i], &d, &o, NULL);
		if (got == 1)
			json_decref(o);
		if (got == -1 || (got == 1 && dead_forget(s, ids[i]) == -1)) {
			free(ids);
			return -1;
		}
		dropped += got;
	}
	free(ids);
	sjs_clear_ok(s);
	return dropped;
}

int64_t sjs_dead_count(struct store *st)
{
	struct sjs *s = S(st);
	int64_t n, *ids = dead_ids(s, STORE_ALL, &n);

	free(ids);
	return n;
}
