/* Inside the JetStream journal store: what store_js.c and store_js_dead.c (its dead letters) share. */
#ifndef TGRUN_STORE_JS_INT_H
#define TGRUN_STORE_JS_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

#include "jsutil.h"
#include "log.h"
#include "store.h"
#include "u64map.h"

/* An unfinished update as the stream says it. */
struct entry {
	uint64_t seq;		/* of its journal.upd message; 0 not known yet */
	int attempt;		/* kept in memory only */
	size_t len;
	char body[];		/* NUL-terminated */
};

/* The ack of one async publish that carried a Nats-Msg-Id. */
struct ack {
	int64_t id;
	uint64_t seq;
	int dup;
};

struct note {
	int64_t id;
	int dead;
};

/* A message of the follow subscription, on its way to the loop. */
struct fmsg {
	struct jsq_node node;
	natsMsg *msg;
};

/*
 * What the follow subscription's handler needs, shared with it: libnats may
 * run the handler once more after the subscription is destroyed, so the last
 * of the two owners (the store, the subscription's on-complete) frees it.
 */
struct follow {
	pthread_mutex_t mu;
	int refs;
	int closed;			/* the store is gone: drop what arrives */
	int completed;			/* libnats called on_sub_complete() */
	natsSubscription *sub;		/* draining: on_sub_complete() destroys it */
	struct jsq *q;
};

struct sjs {
	struct store store;		/* first: a struct store * is a struct sjs * */
	natsConnection *nc;
	jsCtx *js;			/* our own: Wait = timeout, acks to on_ack() */
	struct jsu_sink *sink;		/* on_ack()'s closure: it may outlive this */
	kvStore *dead;
	int64_t timeout_ms;
	char stream[JSU_NAME_MAX], bucket[JSU_NAME_MAX];
	char subj_all[JSU_NAME_MAX], subj_upd[JSU_NAME_MAX];
	char subj_done[JSU_NAME_MAX], subj_off[JSU_NAME_MAX];
	char origin[48];		/* JSU_HDR_ORIGIN of the completions we publish */
	/*
	 * The stream folded in sequence order up to read_seq: update_id →
	 * struct entry * for every upd not followed by its done. Our own writes
	 * change it at once too; folding them again later changes nothing.
	 */
	struct u64map pend;
	uint64_t read_seq;
	int64_t offset;
	uint64_t offset_seq;		/* the newest message that told an offset: never purged */
	uint64_t off_note_seq;		/* the newest offset note acked (under mu) */
	int64_t *done;			/* completions queued by done() */
	size_t ndone, done_cap;
	/* Results of async publishes, filled on libnats' thread. */
	pthread_mutex_t mu;
	struct ack *acks;
	size_t nacks, acks_cap;
	int nerr;
	jsErrCode ack_jerr;
	char ack_err[160];
	/* store_js_follow() */
	struct jsq *q;
	struct follow *fl;
	natsSubscription *sub;
	void (*on_done)(void *arg, int64_t update_id, int dead);
	void *arg;
	struct note *notes;
	size_t nnotes, notes_cap;
	/* The stream as last seen. */
	jsStreamState st;
	int64_t purged_at;
	int full;			/* the last failure: JetStream out of storage */
	struct log_rate warned;		/* failures logged at most every few seconds */
	char errmsg[256];
};

#define S(st) ((struct sjs *)(st))

/* Record (and log) why the call fails; sjs_clear_ok() after a success. */
void sjs_seterr(struct sjs *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sjs_clear_ok(struct sjs *s);
/* Log the recorded error, at most every 10 s. */
void sjs_warn(struct sjs *s);
/* Publish one journal message without waiting; a completion carries our origin. 0 or -1. */
int sjs_publish(struct sjs *s, const char *subj, const char *msgid, int64_t offset,
    const char *body, size_t len) __attribute__((warn_unused_result));
/* Wait for the acks of everything published since sjs_reset_acks(); any failure fails all. */
void sjs_reset_acks(struct sjs *s);
int sjs_publish_wait(struct sjs *s, const char *what);
/* The ack of the message with this update id (hint: where it should be); under s->mu. */
const struct ack *sjs_find_ack(const struct sjs *s, int64_t id, size_t hint);
/* Unfinished updates in memory. */
int sjs_add_entry(struct sjs *s, int64_t id, uint64_t seq, const char *body, size_t len);
void sjs_drop_entry(struct sjs *s, int64_t id);
int sjs_cmp_id(const void *a, const void *b);
int sjs_offset(struct store *st, int64_t *out);

/* store.h's dead letters (store_js_dead.c): in the bucket TGRUN_<name>_DEAD. */
int sjs_dead_letter(struct store *st, int64_t id, int attempts, const char *error);
int sjs_dead_list(struct store *st, store_dead_cb cb, void *arg);
int sjs_dead_get(struct store *st, int64_t id, store_dead_cb cb, void *arg);
int64_t sjs_dead_retry(struct store *st, int64_t id);
int64_t sjs_dead_drop(struct store *st, int64_t id);
int64_t sjs_dead_count(struct store *st);

#endif
