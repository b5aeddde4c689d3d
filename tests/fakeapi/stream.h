/* The update stream: stored updates, their ids and metadata, release and confirmation. */
#ifndef FAKEAPI_STREAM_H
#define FAKEAPI_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

enum {
	STREAM_TYPE_MESSAGE = 0,
	STREAM_TYPE_EDITED_MESSAGE,
	STREAM_TYPE_CALLBACK_QUERY,
	STREAM_TYPE_INLINE_QUERY,
	STREAM_TYPE_MY_CHAT_MEMBER,
	STREAM_TYPE_POLL,
	/* the six generated types come first; the rest of Telegram's follow */
	STREAM_TYPE_OTHER = 31
};

/* One update. The stats fields belong to stats.c and are reset by it. */
struct stream_update {
	int64_t id;
	char *json;
	size_t len;
	int type;
	int has_chat;
	int expected;		/* an echo is expected (has a chat, or inline_query) */
	int64_t chat_id;
	char *inline_id;	/* inline_query id, or NULL */
	int64_t message_id;	/* a `message` update's message_id, else 0 */
	/* stats */
	double released_ms;		/* became available to getUpdates */
	double first_handout_ms;	/* < 0: never handed out */
	double first_echo_ms;		/* < 0: never echoed */
	uint32_t handouts;
	uint32_t echoes;
	int32_t echo_head;		/* first echo event, -1 if none */
	int32_t echo_tail;
};

struct stream;

struct stream *stream_new(int64_t first_id, double rate);
void stream_free(struct stream *s);

/* Append an update (json must be an object with one type key; update_id is assigned
 * when missing or 0). Takes no reference on json. Returns the index or -1 with err. */
long stream_add(struct stream *s, json_t *update, char *err, size_t errlen);
/* Id the next added update without an update_id gets. */
int64_t stream_next_id(const struct stream *s);

size_t stream_count(const struct stream *s);
/* How many stored updates expect an echo. */
size_t stream_expected(const struct stream *s);
size_t stream_released(const struct stream *s);
size_t stream_head(const struct stream *s);
struct stream_update *stream_at(struct stream *s, size_t i);

/* Make every stored update available now. */
void stream_release_all(struct stream *s);
/* Release updates by the configured rate; returns how many were newly released. */
size_t stream_tick(struct stream *s, double now_ms);
/* Hold (on = 1: release nothing more) or go on from now at the rate (on = 0). */
void stream_hold(struct stream *s, int on, double now_ms);
int stream_held(const struct stream *s);
/* Start the rate clock now (after a long generation, say). */
void stream_rate_restart(struct stream *s, double now_ms);
/* Milliseconds until the next rate release, or -1 if nothing is waiting. */
double stream_next_release_in(const struct stream *s, double now_ms);
/* Forget released updates with id < offset (negative: keep only the last -offset).
 * Returns how many were forgotten. */
size_t stream_confirm(struct stream *s, int64_t offset);

long stream_find(struct stream *s, int64_t id);
long stream_find_inline(struct stream *s, const char *inline_id);
/* The `message` update with this chat and message_id (a reply's target), or -1. */
long stream_find_message(struct stream *s, int64_t chat_id, int64_t message_id);

/* Telegram's update type names. */
const char *stream_type_name(int type);
int stream_type_index(const char *name);
uint32_t stream_default_mask(void);

#endif
