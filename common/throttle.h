/* Flood limits shared by all workers: token buckets in memory the master creates. */
#ifndef TGRUN_THROTTLE_H
#define TGRUN_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

/* The worker's end of the shared memory, after exec (next to FRAME_WORKER_FD). */
#define THROTTLE_FD 4

/* Per-chat buckets: direct-mapped by a hash of the chat id (see throttle.c). */
#define THROTTLE_SLOTS 65536

/* `n` events per `period_us`: a bucket of n tokens refilling continuously. */
struct throttle_rate {
	int64_t n;
	int64_t period_us;
};

struct throttle_rates {
	struct throttle_rate global;	/* every throttled call */
	struct throttle_rate chat;	/* per chat */
	struct throttle_rate group;	/* per group (chat id < 0), on top of chat */
};

struct throttle;

/*
 * The master: a new memfd (close-on-exec) sized and mapped for the buckets,
 * all full. NULL with errno set on failure. The fd stays open for children
 * (throttle_fd) until throttle_close().
 */
struct throttle *throttle_create(const struct throttle_rates *r)
	__attribute__((warn_unused_result));
/*
 * A worker: map the memory at `fd` (then closed) made by throttle_create.
 * NULL on failure with a one-line reason in `err`.
 */
struct throttle *throttle_attach(int fd, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* Unmap (and close the fd, if still open); t may be NULL. */
void throttle_close(struct throttle *t);
/* The memfd to hand to children, -1 after throttle_attach. */
int throttle_fd(const struct throttle *t);

/*
 * Change the rates in place (a reload); buckets keep their state, any debt
 * beyond the new capacity is forgiven. 0, or -1 with errno (EINVAL for a
 * rate with n < 1 or period_us < 1).
 */
int throttle_set_rates(struct throttle *t, const struct throttle_rates *r)
	__attribute__((warn_unused_result));

/*
 * Take one token from the global bucket and, when chat_id != 0, from the
 * chat's bucket (and its group bucket when chat_id < 0), all or nothing,
 * at time now_us (CLOCK_MONOTONIC, see clock_us). Returns 0 when
 * taken; 1 when not, with *wait_us (> 0) the time until all would have a
 * token; -1 with errno if the lock is unusable (nothing taken). chat_id 0
 * means "no numeric chat": the global bucket only.
 */
int throttle_acquire(struct throttle *t, int64_t chat_id, int64_t now_us,
    int64_t *wait_us) __attribute__((warn_unused_result));


/*
 * 1 when `method` sends a message into a chat and counts against the flood
 * limits (sendMessage, sendPhoto, ..., copyMessage(s), forwardMessage(s));
 * 0 for the rest (sendChatAction, answerCallbackQuery, getMe, edits, ...).
 */
int throttle_method_counts(const char *method);

/* Grants and refusals so far, and grants made through a slot shared by two chats. */
void throttle_counters(struct throttle *t, uint64_t *granted, uint64_t *refused,
    uint64_t *shared);

/*
 * Tests only: take the lock and return holding it, as a worker killed
 * inside throttle_acquire would.
 */
int throttle_test_hold_lock(struct throttle *t);

#endif
