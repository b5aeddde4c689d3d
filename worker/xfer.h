/* The worker's one transfer core: a curl easy handle run on the worker's multi while its fiber waits. */
#ifndef TGRUN_XFER_H
#define TGRUN_XFER_H

#include <curl/curl.h>

struct tgrun_ctx;

/* On the scheduler's stack, when the transfer ended and before its fiber is woken. */
typedef void (*xfer_done_fn)(CURL *easy, CURLcode cc, void *arg);

/*
 * Run `easy` once on the worker's curl multi; the calling fiber (ctx's, which
 * must be the running one) parks meanwhile, as `what` in fiber dumps. The
 * transfer's own timeout bounds the wait. The start is deferred to the
 * scheduler's stack, where libcurl runs.
 *
 * Returns 0 when the transfer ended: done(easy, cc, arg) ran first (unless
 * done is NULL) and *cc says how it ended. ECANCELED when the fiber was
 * cancelled before or during the transfer: done did not run.
 *
 * Ownership, the one rule for every transfer: what the scheduler's stack
 * may still touch after the fiber stopped waiting (the deferred start, the
 * completion) is the core's, on the heap, freed by whichever of the fiber
 * and the deferred start lets go of it last; `easy` and `arg` (often on the
 * fiber's stack) are touched only while the fiber waits. When xfer_run
 * returns, `easy` is off the multi and nothing refers to it or to `arg`:
 * the caller may free both at once.
 */
int xfer_run(struct tgrun_ctx *ctx, CURL *easy, const char *what,
    xfer_done_fn done, void *arg, CURLcode *cc) __attribute__((warn_unused_result));
/* The same on the multi for servers other than the Bot API (tgrun_http). */
int xfer_run_other(struct tgrun_ctx *ctx, CURL *easy, const char *what,
    xfer_done_fn done, void *arg, CURLcode *cc) __attribute__((warn_unused_result));

#endif
