/* getUpdates as Telegram does it: offset, limit, long poll, allowed_updates, 409s, webhook. */
#ifndef FAKEAPI_POLL_H
#define FAKEAPI_POLL_H

#include "app.h"
#include "server.h"

struct poll *poll_new(struct app *app);
void poll_free(struct poll *p);
/* Handle a getUpdates call; owns c from here on. */
void poll_get_updates(struct call *c);
/* The stream grew or released updates: answer a waiting long poll. */
void poll_wake(struct app *app);
/* Set (url non-empty) or clear the webhook; a pending poll gets its 409. */
void poll_set_webhook(struct app *app, const char *url);
const char *poll_webhook(const struct app *app);
/*
 * Hostile mode: the next getUpdates calls get these raw bodies with these
 * statuses, in order, whatever they are; the stream is untouched meanwhile.
 */
void poll_script_add(struct app *app, const char *body, size_t len, int status);
/* {"remaining": N, "offsets": [the offset of each getUpdates call]} */
void poll_script_dump(const struct app *app, struct evbuffer *out);
/* Forget every released update (drop_pending_updates). */
void poll_drop_pending(struct app *app);

/*
 * The poll log: every getUpdates call (its client's /__via/ name, arrival,
 * answer, status, the update ids handed out), from the start of the run
 * (reset_stats keeps it). start at arrival, end with the answer's status.
 */
void poll_log_start(struct call *c);
void poll_log_end(struct call *c, int status);
/* {"polls":[...],"next":N,"now_ms":T}: entries after `since`, of one client if via != NULL. */
void poll_log_json(const struct app *app, const char *via, size_t since, struct evbuffer *out);

#endif
