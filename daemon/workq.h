/* The cluster's work queue: released updates go out on a JetStream work stream, every node pulls. */
#ifndef TGRUN_WORKQ_H
#define TGRUN_WORKQ_H

#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

struct event_base;

/*
 * The stream TGRUN_<name>_WORK (subject tgrun.<name>.work, WorkQueue
 * retention, file storage, `replicas` copies) and its one durable pull
 * consumer `workers`, shared by every node: AckWait = ack_wait_ms,
 * MaxDeliver = max_deliver. A message's id is w<update_id>, so a new leader
 * republishing a released update is deduplicated while the first copy waits
 * in the stream (within its duplicate window, 2 minutes); once that copy is
 * gone (run, or dead), a republish (a retried dead letter) goes out again.
 *
 * A thread of its own pulls as many messages as the loop said it can take
 * (workq_set_capacity) and hands them to the loop through a queue and an
 * eventfd: every callback runs on the loop thread of `base`. `nc` and `js`
 * must outlive the queue; it makes its own JetStream context for publishing.
 */
struct workq;
struct workq_item;     /* one pulled work message */
struct workq_cbs {
	void *arg;
	/* a pulled item to run locally (loop thread); delivery counts from 1 */
	void (*on_work)(void *arg, struct workq_item *it, int64_t update_id,
	                const char *body, size_t len, int delivery);
	/* how many more items this node can take now (loop thread; read by the pull thread through an atomic) */
};
/* Creates/binds the stream and the durable consumer (an existing one gets these AckWait and MaxDeliver). */
struct workq *workq_open(natsConnection *nc, jsCtx *js, struct event_base *base, const char *bot_name,
                         int replicas, int64_t ack_wait_ms, int max_deliver, const struct workq_cbs *cbs,
                         char *err, size_t errlen);      /* creates/binds the stream and the durable consumer */
/*
 * The pull thread fetches at most this many; items already handed to on_work
 * before this call count as taken, later ones are subtracted until the next
 * call. 0 (the start) pulls nothing.
 */
void workq_set_capacity(struct workq *q, int free_slots);
/*
 * Leader: publish a released update (async, msg id w<id>); a failed publish
 * is retried by the queue itself until it is acked or the queue closes.
 * 0, or -1 (out of memory, or the connection closed).
 */
int  workq_publish(struct workq *q, int64_t update_id, const char *body, size_t len);  /* leader; async, msg id w<id> */
/*
 * A leader that steps down: the publishes still being retried are dropped (and
 * failures of those in flight are not retried); the next leader publishes
 * those updates from the journal. Loop thread.
 */
void workq_drop_unpublished(struct workq *q);
/* The item ran: ok → publish journal.done <id>, then ack once JetStream acked it; failed → nak (redelivered,
   with a short delay); dead (delivery > max_attempts) → put the DEAD bucket entry with `error`, publish
   journal.done "<id> dead", then terminate the message. Frees `it`. */
enum workq_result { WORKQ_OK, WORKQ_FAILED, WORKQ_DEAD };
void workq_finish(struct workq *q, struct workq_item *it, enum workq_result r, const char *error);
struct workq_info { uint64_t messages, bytes, first_seq, last_seq; uint64_t pulled, ran; };
/* The work stream's state (a bounded request) and this node's counters. 0 or -1. */
int  workq_info(struct workq *q, struct workq_info *out);
void workq_close(struct workq *q);      /* stops the pull thread; unfinished items are redelivered elsewhere */

#endif
