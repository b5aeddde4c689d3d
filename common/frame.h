/* The master <-> worker wire protocol: fixed header, length-checked frames. */
#ifndef TGRUN_FRAME_H
#define TGRUN_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_VERSION 1
#define FRAME_HDR_LEN 24
/* Largest payload accepted: Telegram updates are far smaller. */
#define FRAME_MAX_PAYLOAD (8u << 20)

/* The worker's end of its socketpair, after exec. */
#define FRAME_WORKER_FD 3

enum frame_type {
	/* master -> worker */
	FRAME_CONFIG = 1,	/* payload: JSON settings, token included */
	FRAME_UPDATE = 2,	/* seq: update id; arg: attempt; payload: update JSON */
	FRAME_CANCEL = 3,	/* seq: update id */
	FRAME_DRAIN = 4,	/* finish in-flight work, run fini, exit 0 */
	FRAME_PING = 5,		/* seq: ping number */
	FRAME_DUMP = 6,		/* seq: request id; answered by STATS with FRAME_STATS_DUMP */
	/* worker -> master */
	FRAME_READY = 16,	/* payload: JSON {"pid":..} */
	FRAME_DONE = 17,	/* seq: update id; flags: enum frame_status; arg: ms;
				 * payload: why it failed (ERROR, FINAL; may be empty) */
	FRAME_PONG = 18,	/* seq: the ping number */
	FRAME_FAIL = 19,	/* start-up failed; flags: enum frame_fail; payload: text */
	FRAME_STATS = 20,	/* flags: enum frame_stats_kind; payload: JSON */
};

/*
 * STATS frames. FRAME_STATS_API (seq 0): Bot API calls since the last report,
 * {"api":{"METHOD":{"ok":N,"api_error":N,"network_error":N,"timeout":N,
 * "cancelled":N}},"429":N}, sent every second while there are some and before
 * exit. FRAME_STATS_DUMP (seq: the DUMP's request id): the fibers, a JSON
 * array of {"update_id":N|null,"type":S,"what":S,"waited_ms":N}.
 */
enum frame_stats_kind { FRAME_STATS_API = 0, FRAME_STATS_DUMP = 1 };

/* FINAL: the handler failed and asked for no retry (tgrun_no_retry). */
enum frame_status {
	FRAME_ST_OK = 0, FRAME_ST_ERROR = 1, FRAME_ST_CANCELLED = 2, FRAME_ST_FINAL = 3
};
/*
 * Longest error text in a DONE frame: one line, UTF-8 cut at a character.
 * A longer one is a protocol error; the master escapes what it gets.
 */
#define FRAME_DONE_ERR_MAX 240
enum frame_fail { FRAME_FAIL_LOAD = 1, FRAME_FAIL_INIT = 2, FRAME_FAIL_CONFIG = 3 };

/*
 * A worker's exit status, read by the master: UNUSABLE means its
 * configuration or handler cannot work, so respawning it would only loop.
 */
enum worker_exit { WORKER_EXIT_OK = 0, WORKER_EXIT_FAILED = 1, WORKER_EXIT_UNUSABLE = 2 };

/*
 * Header layout on the wire (host byte order: both ends are on one machine):
 *   u8 version, u8 type, u16 flags, u32 len, u64 seq, u32 arg, u32 reserved (0)
 */
struct frame {
	uint8_t type;
	uint16_t flags;
	uint32_t len;
	uint64_t seq;
	uint32_t arg;
	const char *payload;	/* points into the caller's buffer; len bytes */
};

/* Write the header for `f` into out[FRAME_HDR_LEN]. */
void frame_pack_hdr(const struct frame *f, uint8_t out[FRAME_HDR_LEN]);

/*
 * Decode one frame from buf[0..avail). Returns 1 and fills `f` (payload
 * pointing into buf) when a whole frame is there, 0 when more bytes are
 * needed, -1 when the bytes are not a valid frame (*why says what).
 */
int frame_decode(const uint8_t *buf, size_t avail, struct frame *f,
    const char **why);

/* Total size of the frame `f` describes. */
static inline size_t frame_size(const struct frame *f)
{
	return FRAME_HDR_LEN + (size_t)f->len;
}

const char *frame_type_name(int type);

struct evbuffer;
/*
 * libevent helpers. frame_write appends a frame to an output buffer.
 * frame_read peeks at `in`: 1 = a frame is in `f` (its payload stays valid
 * until frame_consume(in, f) drains it), 0 = incomplete, -1 = invalid.
 */
int frame_write(struct evbuffer *out, uint8_t type, uint16_t flags,
    uint64_t seq, uint32_t arg, const void *payload, size_t len)
	__attribute__((warn_unused_result));
int frame_read(struct evbuffer *in, struct frame *f, const char **why);
void frame_consume(struct evbuffer *in, const struct frame *f);

#endif
