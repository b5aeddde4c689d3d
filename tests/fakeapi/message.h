/* Realistic Bot API result objects: the bot user, Message objects for send and edit methods. */
#ifndef FAKEAPI_MESSAGE_H
#define FAKEAPI_MESSAGE_H

#include <stddef.h>
#include <event2/buffer.h>
#include <jansson.h>

#include "app.h"
#include "params.h"

#define MESSAGE_BOT_ID 123456789

struct message_state;

struct message_state *message_new(void);
void message_free(struct message_state *ms);

json_t *message_bot_user(void);
/* 1 if method answers with Message-like results built by message_build. */
int message_handles(const char *method);
/* Build the result of a send/edit/forward/copy call into *result.
 * Returns 200, or an HTTP error code with err set to Telegram's description. */
int message_build(struct app *app, const char *method, const struct params *p,
    json_t **result, char *err, size_t errlen);

/* The hot path of benchmarks: write {"ok":true,"result":<Message>} of a plain
 * sendMessage straight to out, sparing jansson. Returns 1 if it did, 0 if the call
 * needs message_build (missing or unusual parameters). */
int message_fast_send(struct app *app, const struct params *p, struct evbuffer *out);

#endif
