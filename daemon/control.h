/* The control socket: line-based JSON requests from tgrunctl, one reply line each. */
#ifndef TGRUN_CONTROL_H
#define TGRUN_CONTROL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Protocol, version 1. A client sends one JSON object per line (at most
 * CONTROL_MAX_LINE bytes): {"v":1,"cmd":"status"} and gets one line back:
 * {"ok":true,...} or {"ok":false,"error":"..."}. A line that is too long is
 * answered with an error and the connection is closed. Commands and their
 * arguments:
 *   status | workers | reload | pause | resume
 *   dead-letters  "action": "list" | "show" | "retry" | "drop",
 *                 "id": N (show), N or "all" (retry, drop)
 *   fibers        "worker": N (slot of the current generation)
 */
#define CONTROL_VERSION 1
#define CONTROL_MAX_LINE 8192

#include "status.h"

enum control_cmd {
	CONTROL_STATUS,
	CONTROL_WORKERS,
	CONTROL_RELOAD,
	CONTROL_PAUSE,
	CONTROL_RESUME,
	CONTROL_DEAD_LETTERS,
	CONTROL_FIBERS,
};

enum control_dead_action {
	CONTROL_DEAD_LIST,
	CONTROL_DEAD_SHOW,
	CONTROL_DEAD_RETRY,
	CONTROL_DEAD_DROP,
};

/* A request, checked. Members a command does not take are 0. */
struct control_req {
	enum control_cmd cmd;
	enum control_dead_action action;	/* dead-letters; absent = list */
	int64_t id;		/* dead-letters show: an update id; retry, drop: one
				 * or STATUS_ALL */
	int worker;		/* fibers: a worker slot */
};

/*
 * Parse one request line of `len` bytes (without its newline) into *req.
 * 0, or -1 with the error for the reply in `err`: what is wrong, and what
 * is accepted. Members other than those above are ignored.
 */
int control_parse(const char *line, size_t len, struct control_req *req, char *err,
    size_t errlen) __attribute__((warn_unused_result));

struct event_base;
struct control;

/*
 * Listen on `path` (mode 0600; a stale socket is replaced, a live one is an
 * error). NULL with one line in `err`.
 */
struct control *control_new(struct event_base *base, const struct status_ops *ops,
    const char *path, char *err, size_t errlen) __attribute__((warn_unused_result));
/* Close every connection and remove the socket file (if it is still ours). */
void control_free(struct control *c);

/* A worker's answer to a DUMP: finishes the `fibers` request `req`, if any. */
void control_dump_answer(struct control *c, uint64_t req, const char *payload,
    size_t len);

#endif
