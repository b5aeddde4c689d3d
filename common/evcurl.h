/* libcurl multi driven by a libevent loop. */
#ifndef TGRUN_EVCURL_H
#define TGRUN_EVCURL_H

#include <curl/curl.h>

struct event_base;
struct evcurl;

/*
 * Called once per finished transfer, from the event loop and never from
 * inside a libcurl callback, after the handle was removed from the multi:
 * the callee owns `easy` again and may re-add it or clean it up.
 */
typedef void (*evcurl_done_cb)(CURL *easy, CURLcode res, void *arg);

/* maxconns: idle connections kept open for reuse. */
struct evcurl *evcurl_new(struct event_base *base, int maxconns);
void evcurl_free(struct evcurl *ec);
CURLM *evcurl_multi(struct evcurl *ec);

/* Start `easy`; cb(arg) runs when it ends. Uses CURLOPT_PRIVATE. */
int evcurl_add(struct evcurl *ec, CURL *easy, evcurl_done_cb cb, void *arg)
	__attribute__((warn_unused_result));
/* Abort a running transfer; its callback is not called. */
void evcurl_remove(struct evcurl *ec, CURL *easy);
/* Transfers running now. */
int evcurl_running(const struct evcurl *ec);
/*
 * At most `conns` connections per host while this multi's server speaks
 * HTTP/2 (0: never cap). libcurl 7.88 opens a new connection for every call
 * that finds the HTTP/2 ones full instead of waiting for the one still in
 * its handshake; with a cap, calls past the streams in use wait for a free
 * stream. The cap holds from now on; the first transfer that ends on
 * HTTP/1.x lifts it for good (each call then needs a connection of its own).
 * Use it on a multi that talks to one server (the Bot API): it caps every
 * host of that multi.
 */
void evcurl_http2_cap(struct evcurl *ec, long conns);

#endif
