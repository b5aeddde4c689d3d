/* What the JetStream modules (store_js, workq) share: names, streams and buckets, a hand-over to the loop. */
#ifndef TGRUN_JSUTIL_H
#define TGRUN_JSUTIL_H

#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

struct event_base;

/* Longest stream, bucket or subject name we build. */
#define JSU_NAME_MAX 320

/* Headers of journal messages: the offset that confirms a batch; which store wrote a done. */
#define JSU_HDR_OFFSET "Tgrun-Offset"
#define JSU_HDR_ORIGIN "Tgrun-Origin"

/* "TGRUN_<name>_<what>" with every character a stream name may not hold as '_'. 0 or -1 (too long). */
int jsu_stream_name(char *buf, size_t len, const char *bot_name, const char *what)
	__attribute__((warn_unused_result));
/* "tgrun.<name>.<what>". 0 or -1 (too long). */
int jsu_subject(char *buf, size_t len, const char *bot_name, const char *what)
	__attribute__((warn_unused_result));

/* The failure of a libnats call as text: the JetStream error code or libnats' last error. */
void jsu_errf(char *err, size_t errlen, const char *call, const char *what,
    natsStatus s, jsErrCode jerr);

/*
 * Bind the stream `cfg->Name`, or create it if absent (two nodes creating it
 * at once with the same config both succeed). 0 or -1 with `err` filled.
 */
int jsu_stream(jsCtx *js, jsStreamConfig *cfg, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/*
 * The journal stream TGRUN_<name>_JOURNAL (subjects tgrun.<name>.journal.>,
 * file storage), bound or created: the store writes it, every node's work
 * queue publishes completions to it.
 */
int jsu_journal_stream(jsCtx *js, const char *bot_name, int replicas, char *err,
    size_t errlen) __attribute__((warn_unused_result));
/* The dead-letter bucket TGRUN_<name>_DEAD, bound or created (history 1). */
kvStore *jsu_dead_bucket(jsCtx *js, const char *bot_name, int replicas, char *err,
    size_t errlen) __attribute__((warn_unused_result));
/* Put one dead letter: key = update_id, value JSON {attempts, error, died_at, body}. 0 or -1. */
int jsu_dead_put(kvStore *kv, int64_t update_id, int attempts, const char *error,
    const char *body, size_t len, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * A KV bucket read through its stream, so its leader answers (a direct get
 * may come from a replica that lags behind a put just acked elsewhere).
 * jsu_kv_get: the live value of `key`: 1 (*out to natsMsg_Destroy, its
 * sequence is the revision), 0 absent or deleted, -1. jsu_kv_keys: every
 * live key, each to `cb` (its non-zero return stops the walk and is
 * returned), 0 or -1.
 */
int jsu_kv_get(jsCtx *js, const char *bucket, const char *key, natsMsg **out, char *err,
    size_t errlen) __attribute__((warn_unused_result));
int jsu_kv_keys(jsCtx *js, const char *bucket, int64_t idle_ms,
    int (*cb)(void *arg, const char *key), void *arg, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The state of a stream (a bounded request). 0 or -1. */
int jsu_stream_state(jsCtx *js, const char *stream, jsStreamState *out, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/*
 * A hand-over from libnats' threads to the loop: jsq_push() from any thread
 * queues a node and wakes the loop through an eventfd; there `fn` gets every
 * queued node at once, in push order (a NULL-terminated list).
 */
struct jsq_node {
	struct jsq_node *next;
};
struct jsq;
struct jsq *jsq_new(struct event_base *base, void (*fn)(void *arg, struct jsq_node *list),
    void *arg) __attribute__((warn_unused_result));
void jsq_push(struct jsq *q, struct jsq_node *n);
/* Run `fn` soon on the loop even with nothing queued (a NULL list). */
void jsq_kick(struct jsq *q);
/* Stop watching; the nodes still queued are returned (NULL-terminated) for the caller to free. */
struct jsq_node *jsq_free(struct jsq *q);

/*
 * The closure of libnats callbacks that may still come after their owner is
 * gone: an async publish's ack, or its MaxWait timeout, arrives on libnats'
 * thread whenever it arrives, even after the JetStream context was destroyed.
 * A callback brackets its work with jsu_sink_enter()/jsu_sink_leave() and
 * does nothing when enter gives NULL. A retired sink is never freed (libnats
 * may still hold it): a few bytes per closed store or queue.
 */
struct jsu_sink;
void *jsu_sink_enter(struct jsu_sink *k);
void jsu_sink_leave(struct jsu_sink *k);
/*
 * js_PublishMsgAsync() for the owner of `k`; on_ack frees the messages it is
 * handed with jsu_msg_free(), which waits for a publish under way (libnats
 * 3.4 may time a message out while it is still being written).
 */
natsStatus jsu_publish(struct jsu_sink *k, jsCtx *js, natsMsg **m, jsPubOptions *po);
void jsu_msg_free(struct jsu_sink *k, natsMsg *m);
/*
 * A JetStream context of `owner`'s own for async publishes: requests wait
 * `wait_ms`, at most 65,536 publishes are in flight, and every ack (or its
 * timeout) goes to `on_ack` with a new sink of `owner` (*sink) as closure.
 * 0, or -1 with `err` naming `what`.
 */
int jsu_async_ctx(natsConnection *nc, int64_t wait_ms, jsPubAckHandler on_ack,
    void *owner, const char *what, jsCtx **js, struct jsu_sink **sink, char *err,
    size_t errlen) __attribute__((warn_unused_result));
/* Publishes not acked in time: drop them (their answers may still come). */
void jsu_async_drop_pending(jsCtx *js, struct jsu_sink *sink);
/*
 * The owner closes: wait up to `wait_ms` for the acks of what it published,
 * drop the rest, and retire the sink (the owner may be freed afterwards).
 */
void jsu_async_settle(jsCtx *js, struct jsu_sink *sink, int64_t wait_ms);
/*
 * Then the context goes: at once, or, when an answer to one of its publishes
 * may still come (one timed out), at jsu_deferred_free().
 */
void jsu_async_free(jsCtx *js, struct jsu_sink *sink);
/* Once the NATS connection is closed: free what waited for it. */
void jsu_deferred_free(void);
/*
 * End a subscription that may still receive: drain it (the server confirms
 * that nothing more comes, within `wait_ms`), read a synchronous one empty,
 * then destroy it. Not for a subscription with a message handler.
 */
void jsu_sub_end(natsSubscription *sub, int64_t wait_ms);

#endif
