/* The update stream: stored updates, their ids and metadata, release and confirmation. */
#include "stream.h"
#include "hmap.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One key for a (chat, message) pair; a collision is caught by the lookup's check. */
static int64_t
msg_key(int64_t chat_id, int64_t message_id)
{
	uint64_t k = (uint64_t)chat_id * 0x9e3779b97f4a7c15ull ^ (uint64_t)message_id;

	return (int64_t)(k & 0x7fffffffffffffffull);
}

struct stream {
	struct stream_update *u;
	size_t len, cap;
	size_t released;	/* u[0..released) are available to getUpdates */
	size_t head;		/* u[0..head) are confirmed (forgotten) */
	size_t expected;
	int64_t next_id;
	double rate;		/* updates/s, 0 = all at once */
	double rate_t0;
	size_t rate_base;	/* index the rate clock counts from */
	int held;		/* nothing more is released until stream_hold(s, 0) */
	struct hmap by_id;	/* update_id -> index */
	struct hmap by_inline;	/* hash(inline_query id) -> index */
	struct hmap by_msg;	/* hash(chat id, message_id) of `message` updates -> index */
};

static const char *const type_names[] = {
	"message", "edited_message", "callback_query", "inline_query",
	"my_chat_member", "poll", "channel_post", "edited_channel_post",
	"business_connection", "business_message", "edited_business_message",
	"deleted_business_messages", "message_reaction", "message_reaction_count",
	"chosen_inline_result", "shipping_query", "pre_checkout_query",
	"purchased_paid_media", "poll_answer", "chat_member", "chat_join_request",
	"chat_boost", "removed_chat_boost",
};
#define NTYPES ((int)(sizeof(type_names) / sizeof(type_names[0])))

const char *
stream_type_name(int type)
{
	if (type >= 0 && type < NTYPES)
		return type_names[type];
	return "other";
}

int
stream_type_index(const char *name)
{
	for (int i = 0; i < NTYPES; i++) {
		if (strcmp(name, type_names[i]) == 0)
			return i;
	}
	return -1;
}

uint32_t
stream_default_mask(void)
{
	/* Telegram leaves these out unless asked for explicitly. */
	return ~((1u << stream_type_index("chat_member")) |
	    (1u << stream_type_index("message_reaction")) |
	    (1u << stream_type_index("message_reaction_count")));
}

struct stream *
stream_new(int64_t first_id, double rate)
{
	struct stream *s = util_xcalloc(1, sizeof(*s));

	s->next_id = first_id;
	s->rate = rate;
	s->rate_t0 = util_now_ms();
	hmap_init(&s->by_id);
	hmap_init(&s->by_inline);
	hmap_init(&s->by_msg);
	return s;
}

void
stream_free(struct stream *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->len; i++) {
		free(s->u[i].json);
		free(s->u[i].inline_id);
	}
	free(s->u);
	hmap_free(&s->by_id);
	hmap_free(&s->by_inline);
	hmap_free(&s->by_msg);
	free(s);
}

int64_t
stream_next_id(const struct stream *s)
{
	return s->next_id;
}

static int
chat_of(json_t *obj, int64_t *chat_id)
{
	json_t *id = json_object_get(json_object_get(obj, "chat"), "id");

	if (!json_is_integer(id))
		return 0;
	*chat_id = json_integer_value(id);
	return 1;
}

long
stream_add(struct stream *s, json_t *update, char *err, size_t errlen)
{
	struct stream_update *u;
	const char *key, *type = NULL;
	json_t *val, *body = NULL, *idv;
	int64_t id;

	if (!json_is_object(update)) {
		snprintf(err, errlen, "update is not a JSON object");
		return -1;
	}
	json_object_foreach(update, key, val) {
		if (strcmp(key, "update_id") != 0) {
			type = key;
			body = val;
			break;
		}
	}
	if (type == NULL || !json_is_object(body)) {
		snprintf(err, errlen, "update has no type object");
		return -1;
	}
	idv = json_object_get(update, "update_id");
	if (idv != NULL && !json_is_integer(idv)) {
		snprintf(err, errlen, "update_id is not an integer");
		return -1;
	}
	id = idv ? json_integer_value(idv) : 0;
	if (id == 0) {
		id = s->next_id;
		json_object_set_new(update, "update_id", json_integer(id));
	} else if (id < s->next_id) {
		snprintf(err, errlen, "update_id %lld is not above %lld",
		    (long long)id, (long long)(s->next_id - 1));
		return -1;
	}
	if (s->len == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->u = util_xrealloc(s->u, s->cap * sizeof(*s->u));
	}
	u = &s->u[s->len];
	memset(u, 0, sizeof(*u));
	u->json = json_dumps(update, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (u->json == NULL) {
		snprintf(err, errlen, "cannot serialise update");
		return -1;
	}
	u->len = strlen(u->json);
	u->id = id;
	u->type = stream_type_index(type);
	if (u->type < 0)
		u->type = STREAM_TYPE_OTHER;
	if (u->type == STREAM_TYPE_CALLBACK_QUERY)
		u->has_chat = chat_of(json_object_get(body, "message"), &u->chat_id);
	else
		u->has_chat = chat_of(body, &u->chat_id);
	if (u->type == STREAM_TYPE_INLINE_QUERY) {
		const char *iid = json_string_value(json_object_get(body, "id"));

		if (iid != NULL) {
			u->inline_id = util_xstrndup(iid, strlen(iid));
			*hmap_put(&s->by_inline,
			    (int64_t)util_hash_bytes(iid, strlen(iid)), 0) = (int64_t)s->len;
		}
	}
	if (strcmp(type, "message") == 0 && u->has_chat) {
		json_t *mid = json_object_get(body, "message_id");

		if (json_is_integer(mid) && json_integer_value(mid) != 0) {
			u->message_id = json_integer_value(mid);
			*hmap_put(&s->by_msg, msg_key(u->chat_id, u->message_id), 0) =
			    (int64_t)s->len;
		}
	}
	u->expected = u->has_chat || u->type == STREAM_TYPE_INLINE_QUERY;
	s->expected += (size_t)u->expected;
	u->first_handout_ms = u->first_echo_ms = -1;
	u->released_ms = util_now_ms();
	u->echo_head = u->echo_tail = -1;
	*hmap_put(&s->by_id, id, 0) = (int64_t)s->len;
	s->next_id = id + 1;
	if (s->rate <= 0 && !s->held)
		s->released = s->len + 1;
	return (long)s->len++;
}

size_t
stream_count(const struct stream *s)
{
	return s->len;
}

size_t
stream_expected(const struct stream *s)
{
	return s->expected;
}

size_t
stream_released(const struct stream *s)
{
	return s->released;
}

size_t
stream_head(const struct stream *s)
{
	return s->head;
}

struct stream_update *
stream_at(struct stream *s, size_t i)
{
	return i < s->len ? &s->u[i] : NULL;
}

void
stream_release_all(struct stream *s)
{
	for (size_t i = s->released; i < s->len; i++)
		s->u[i].released_ms = util_now_ms();
	s->released = s->len;
	/* the rate clock restarts after what was forced out */
	s->rate_base = s->len;
	s->rate_t0 = util_now_ms();
}

size_t
stream_tick(struct stream *s, double now_ms)
{
	size_t want, before = s->released;

	if (s->rate <= 0 || s->held || s->released >= s->len)
		return 0;
	want = s->rate_base + (size_t)floor(s->rate * (now_ms - s->rate_t0) / 1000.0);
	if (want > s->len)
		want = s->len;
	for (size_t i = s->released; i < want; i++)
		s->u[i].released_ms = s->rate_t0 + (double)(i + 1 - s->rate_base) *
		    1000.0 / s->rate;
	if (want > s->released)
		s->released = want;
	return s->released - before;
}

void
stream_hold(struct stream *s, int on, double now_ms)
{
	if (s->held && !on) {
		s->held = 0;
		if (s->rate <= 0)
			s->released = s->len;
		stream_rate_restart(s, now_ms);
	}
	s->held = on;
}

int
stream_held(const struct stream *s)
{
	return s->held;
}

void
stream_rate_restart(struct stream *s, double now_ms)
{
	s->rate_base = s->released < s->len ? s->released : s->len;
	s->rate_t0 = now_ms;
}

double
stream_next_release_in(const struct stream *s, double now_ms)
{
	double at;

	if (s->rate <= 0 || s->held || s->released >= s->len)
		return -1;
	at = s->rate_t0 + (double)(s->released + 1 - s->rate_base) * 1000.0 / s->rate;
	return at > now_ms ? at - now_ms : 0;
}

size_t
stream_confirm(struct stream *s, int64_t offset)
{
	size_t before = s->head;

	if (offset < 0) {
		size_t keep = (size_t)(-(offset + 1)) + 1;

		if (s->released > keep && s->released - keep > s->head)
			s->head = s->released - keep;
	} else {
		while (s->head < s->released && s->u[s->head].id < offset)
			s->head++;
	}
	return s->head - before;
}

long
stream_find(struct stream *s, int64_t id)
{
	int64_t *v = hmap_get(&s->by_id, id);

	return v ? (long)*v : -1;
}

long
stream_find_message(struct stream *s, int64_t chat_id, int64_t message_id)
{
	int64_t *v = hmap_get(&s->by_msg, msg_key(chat_id, message_id));

	if (v == NULL || s->u[*v].chat_id != chat_id || s->u[*v].message_id != message_id)
		return -1;
	return (long)*v;
}

long
stream_find_inline(struct stream *s, const char *inline_id)
{
	int64_t *v = hmap_get(&s->by_inline,
	    (int64_t)util_hash_bytes(inline_id, strlen(inline_id)));

	if (v == NULL || strcmp(s->u[*v].inline_id, inline_id) != 0)
		return -1;
	return (long)*v;
}
