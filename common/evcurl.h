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

#endif
