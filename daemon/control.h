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
