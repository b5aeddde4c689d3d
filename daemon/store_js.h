/* The store of fetched updates on a NATS JetStream stream: the cluster's journal (store.h). */
#ifndef TGRUN_STORE_JS_H
#define TGRUN_STORE_JS_H

#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

#include "store.h"

struct event_base;

/*
 * The journal stream TGRUN_<name>_JOURNAL (subjects tgrun.<name>.journal.>,
 * file storage, `replicas` copies; '.' in the name becomes '_' in the stream
 * name) and the dead letters in the KV bucket TGRUN_<name>_DEAD, both
 * created if absent, else bound as they are.
 *
 * store.h semantics: add_batch publishes each update to journal.upd with
 * Nats-Msg-Id <update_id> (a republish is deduplicated) and waits for every
 * ack, at most `timeout_ms`, else -1 (the master retries as for a blocked
 * SQLite write). replay() reads the stream: upd minus done, in update_id
 * order. done()/flush() publish journal.done for updates the leader finishes
 * itself. offset() = the highest offset stored (each upd carries it in a
 * header; an offset-only batch publishes journal.offset), kept across purges.
 * set_attempt() only keeps the count in memory (JetStream counts deliveries).
 * Dead letters live in the DEAD bucket. After a flush, now and then, the
 * stream is purged below the lowest sequence still unfinished.
 *
 * A retried dead letter is published again under the id <update_id>.<n>,
 * so the duplicate window does not swallow it.
 *
 * Every call runs on the caller's (the loop) thread and blocks at most
 * about `timeout_ms` per request; while `nc` is not connected, calls that
 * write or replay fail at once ("not connected to NATS"), and closing never
 * waits for the server. `nc` must outlive the store; the store makes its own
 * JetStream context (`js` is not used).
 */
struct store *store_js_open(natsConnection *nc, jsCtx *js, const char *bot_name, int replicas,
                            int64_t timeout_ms, char *err, size_t errlen);  /* creates/binds stream + DEAD bucket */

/*
 * After replay: deliver every later journal.done on the loop thread of `base`:
 * (id, dead) where dead=1 means the node moved it to the dead letters. The
 * completions this store published itself (done/flush/dead_letter) are not
 * delivered: the caller knows them. Nothing published between the last
 * replay and this call is lost. Once per store; 0 or -1 (see errmsg).
 */
int store_js_follow(struct store *s, struct event_base *base,
                    void (*on_done)(void *arg, int64_t update_id, int dead), void *arg);

struct store_js_info { uint64_t messages, bytes, first_seq, last_seq; };
/* The journal stream's state, for status; a bounded request. 0 or -1. */
int store_js_info(struct store *s, struct store_js_info *out);

#endif
