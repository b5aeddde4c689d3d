/* Update types and the chat/user/thread keys that order them. */
#include "keys.h"

#include <string.h>

#include "config.h"
#include "jscan.h"

/* Indexed by enum update_type; the names are Telegram's Update field names. */
static const char *const type_names[UPD__COUNT] = {
	[UPD_UNKNOWN] = "unknown",
	[UPD_MESSAGE] = "message",
	[UPD_EDITED_MESSAGE] = "edited_message",
	[UPD_CHANNEL_POST] = "channel_post",
	[UPD_EDITED_CHANNEL_POST] = "edited_channel_post",
	[UPD_BUSINESS_CONNECTION] = "business_connection",
	[UPD_BUSINESS_MESSAGE] = "business_message",
	[UPD_EDITED_BUSINESS_MESSAGE] = "edited_business_message",
	[UPD_DELETED_BUSINESS_MESSAGES] = "deleted_business_messages",
	[UPD_MESSAGE_REACTION] = "message_reaction",
	[UPD_MESSAGE_REACTION_COUNT] = "message_reaction_count",
	[UPD_INLINE_QUERY] = "inline_query",
	[UPD_CHOSEN_INLINE_RESULT] = "chosen_inline_result",
	[UPD_CALLBACK_QUERY] = "callback_query",
	[UPD_SHIPPING_QUERY] = "shipping_query",
	[UPD_PRE_CHECKOUT_QUERY] = "pre_checkout_query",
	[UPD_PURCHASED_PAID_MEDIA] = "purchased_paid_media",
	[UPD_POLL] = "poll",
	[UPD_POLL_ANSWER] = "poll_answer",
	[UPD_MY_CHAT_MEMBER] = "my_chat_member",
	[UPD_CHAT_MEMBER] = "chat_member",
	[UPD_CHAT_JOIN_REQUEST] = "chat_join_request",
	[UPD_CHAT_BOOST] = "chat_boost",
	[UPD_REMOVED_CHAT_BOOST] = "removed_chat_boost",
};

/*
 * Where each type carries its keys: dotted paths inside the type's object,
 * NULL when the type has none. `chat_alt` is used only when there is no user
 * (poll_answer from an anonymous chat: the chat votes, not a user).
 */
struct key_paths {
	const char *chat;
	const char *user;
	const char *thread;
	const char *chat_alt;
};

#define MSG_PATHS { "chat.id", "from.id", "message_thread_id", NULL }
#define CHAT_FROM { "chat.id", "from.id", NULL, NULL }
#define FROM_ONLY { NULL, "from.id", NULL, NULL }

static const struct key_paths type_paths[UPD__COUNT] = {
	[UPD_UNKNOWN] = { NULL, NULL, NULL, NULL },
	[UPD_MESSAGE] = MSG_PATHS,
	[UPD_EDITED_MESSAGE] = MSG_PATHS,
	[UPD_CHANNEL_POST] = MSG_PATHS,
	[UPD_EDITED_CHANNEL_POST] = MSG_PATHS,
	[UPD_BUSINESS_CONNECTION] = { NULL, "user.id", NULL, NULL },
	[UPD_BUSINESS_MESSAGE] = MSG_PATHS,
	[UPD_EDITED_BUSINESS_MESSAGE] = MSG_PATHS,
	[UPD_DELETED_BUSINESS_MESSAGES] = { "chat.id", NULL, NULL, NULL },
	[UPD_MESSAGE_REACTION] = { "chat.id", "user.id", NULL, NULL },
	[UPD_MESSAGE_REACTION_COUNT] = { "chat.id", NULL, NULL, NULL },
	[UPD_INLINE_QUERY] = FROM_ONLY,
	[UPD_CHOSEN_INLINE_RESULT] = FROM_ONLY,
	[UPD_CALLBACK_QUERY] = { "message.chat.id", "from.id",
				 "message.message_thread_id", NULL },
	[UPD_SHIPPING_QUERY] = FROM_ONLY,
	[UPD_PRE_CHECKOUT_QUERY] = FROM_ONLY,
	[UPD_PURCHASED_PAID_MEDIA] = FROM_ONLY,
	[UPD_POLL] = { NULL, NULL, NULL, NULL },
	[UPD_POLL_ANSWER] = { NULL, "user.id", NULL, "voter_chat.id" },
	[UPD_MY_CHAT_MEMBER] = CHAT_FROM,
	[UPD_CHAT_MEMBER] = CHAT_FROM,
	[UPD_CHAT_JOIN_REQUEST] = CHAT_FROM,
	[UPD_CHAT_BOOST] = { "chat.id", "boost.source.user.id", NULL, NULL },
	/* The removed boost names its booster too; order it with chat_boost. */
	[UPD_REMOVED_CHAT_BOOST] = { "chat.id", "source.user.id", NULL, NULL },
};

/* Kind tags: the same number as a chat, a user or a thread gives three keys. */
enum { KIND_CHAT = 1, KIND_USER = 2, KIND_THREAD = 3 };

static int get_int(const json_t *obj, const char *path, int64_t *out);
static uint64_t mix64(uint64_t x);
static int add_key(uint64_t *out, int n, uint64_t key);
static int get_int_raw(const char *obj, size_t len, const char *path,
    int64_t *out);
static int split_path(const char *path, char first[32], const char **rest);

enum update_type keys_type_from_name(const char *name)
{
	int t;

	if (name == NULL)
		return UPD_UNKNOWN;
	for (t = UPD_UNKNOWN + 1; t < UPD__COUNT; t++)
		if (strcmp(name, type_names[t]) == 0)
			return (enum update_type)t;
	return UPD_UNKNOWN;
}

const char *keys_type_name(enum update_type t)
{
	if ((int)t <= UPD_UNKNOWN || (int)t >= UPD__COUNT)
		return type_names[UPD_UNKNOWN];
	return type_names[t];
}

int keys_extract(const json_t *update, struct update_keys *k)
{
	const struct key_paths *p;
	const char *name;
	const json_t *id, *v, *body = NULL;
	enum update_type t = UPD_UNKNOWN;

	memset(k, 0, sizeof(*k));
	if (!json_is_object(update))
		return -1;
	id = json_object_get(update, "update_id");
	if (!json_is_integer(id))
		return -1;
	k->update_id = json_integer_value(id);

	/* json_object_foreach wants a non-const object; it only reads. */
	json_object_foreach((json_t *)update, name, v) {
		if (strcmp(name, "update_id") == 0)
			continue;
		t = keys_type_from_name(name);
		if (t != UPD_UNKNOWN) {
			body = v;
			break;
		}
	}
	k->type = t;
	if (!json_is_object(body))
		return 0;

	p = &type_paths[t];
	k->has_chat = p->chat && get_int(body, p->chat, &k->chat_id);
	k->has_user = p->user && get_int(body, p->user, &k->user_id);
	if (!k->has_user && !k->has_chat && p->chat_alt)
		k->has_chat = get_int(body, p->chat_alt, &k->chat_id);
	/* A thread only means something inside its chat. */
	if (k->has_chat && p->thread)
		k->has_thread = get_int(body, p->thread, &k->thread_id);
	return 0;
}

int keys_for(const struct update_keys *k, unsigned seq, uint64_t out[KEYS_MAX])
{
	uint64_t chat_key = 0;
	int n = 0;

	if (k->has_chat)
		chat_key = mix64(mix64(KIND_CHAT) ^ (uint64_t)k->chat_id);
	if ((seq & CFG_SEQ_CHAT) && k->has_chat)
		n = add_key(out, n, chat_key);
	if ((seq & CFG_SEQ_USER) && k->has_user)
		n = add_key(out, n, mix64(mix64(KIND_USER) ^ (uint64_t)k->user_id));
	if ((seq & CFG_SEQ_CHAT_THREAD) && k->has_chat) {
		/*
		 * No thread: the chat key itself, so a chat's non-topic
		 * updates stay ordered among themselves.
		 */
		if (k->has_thread)
			n = add_key(out, n, mix64(mix64(mix64(KIND_THREAD) ^
			    (uint64_t)k->chat_id) ^ (uint64_t)k->thread_id));
		else
			n = add_key(out, n, chat_key);
	}
	return n;
}

/* Follow "a.b.c" through nested objects; 1 and *out set if it ends on an integer. */
static int get_int(const json_t *obj, const char *path, int64_t *out)
{
	char seg[32];
	const char *dot;
	size_t len;

	for (;;) {
		dot = strchr(path, '.');
		len = dot ? (size_t)(dot - path) : strlen(path);
		if (len >= sizeof(seg))
			return 0;
		memcpy(seg, path, len);
		seg[len] = '\0';
		obj = json_object_get(obj, seg);	/* NULL-safe, non-objects give NULL */
		if (dot == NULL)
			break;
		path = dot + 1;
	}
	if (!json_is_integer(obj))
		return 0;
	*out = json_integer_value(obj);
	return 1;
}

/*
 * splitmix64's finaliser. It is a bijection, so two chat ids (or two user
 * ids) never share a key; other collisions are chance and only cost extra
 * serialisation, never order.
 */
static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static int add_key(uint64_t *out, int n, uint64_t key)
{
	int i;

	for (i = 0; i < n; i++)
		if (out[i] == key)
			return n;
	out[n] = key;
	return n + 1;
}

/*
 * keys_extract() without jansson. One pass over the update's members finds
 * update_id (last wins, like json_object_get) and the type: the first known
 * name in document order, whose value is its last occurrence (jansson keeps
 * a duplicate key at its first position with the last value). A second pass,
 * over the type's object only, collects the first step of every key path.
 */
static int extract_raw(const char *json, size_t len, struct update_keys *k, int trusted)
{
	const struct key_paths *p;
	const char *paths[4], *rest[4], *val[4] = { NULL, NULL, NULL, NULL };
	const char *id = NULL, *body = NULL, *end = json + len, *q;
	size_t idlen = 0, blen = 0, vlen[4] = { 0, 0, 0, 0 };
	int64_t num[4];
	int have[4] = { 0, 0, 0, 0 }, rc, i;
	struct jscan_iter it;
	struct jscan_member m;
	enum update_type t = UPD_UNKNOWN;
	char name[32], first[4][32];

	memset(k, 0, sizeof(*k));
	if (jscan_object_begin(&it, json, len) != 0)
		return -1;
	it.trusted = trusted;
	while ((rc = jscan_object_next(&it, &m)) == 1) {
		if (t != UPD_UNKNOWN) {
			if (jscan_key_eq(&m, type_names[t])) {
				body = m.val;
				blen = m.vlen;
			} else if (jscan_key_eq(&m, "update_id")) {
				id = m.val;
				idlen = m.vlen;
			}
			continue;
		}
		if (jscan_key_copy(&m, name, sizeof(name)) < 0)
			continue;	/* longer than any type name */
		if (strcmp(name, "update_id") == 0) {
			id = m.val;
			idlen = m.vlen;
		} else if ((t = keys_type_from_name(name)) != UPD_UNKNOWN) {
			body = m.val;
			blen = m.vlen;
		}
	}
	for (q = it.p; rc == 0 && q < end; q++)
		if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r')
			rc = -1;
	if (rc < 0 || id == NULL || jscan_int64(id, idlen, &k->update_id) != 0) {
		memset(k, 0, sizeof(*k));
		return -1;
	}
	k->type = t;
	if (body == NULL || *body != '{')
		return 0;

	/* The update is valid now: walk the type's object without re-checking. */
	p = &type_paths[t];
	paths[0] = p->chat;
	paths[1] = p->user;
	paths[2] = p->thread;
	paths[3] = p->chat_alt;
	for (i = 0; i < 4; i++)
		if (paths[i] && split_path(paths[i], first[i], &rest[i]) != 0)
			paths[i] = NULL;
	if (jscan_object_begin(&it, body, blen) != 0)
		return 0;
	it.trusted = 1;
	while (jscan_object_next(&it, &m) == 1)
		for (i = 0; i < 4; i++)
			if (paths[i] && jscan_key_eq(&m, first[i])) {
				val[i] = m.val;
				vlen[i] = m.vlen;
			}
	for (i = 0; i < 4; i++)
		if (val[i] != NULL)
			have[i] = get_int_raw(val[i], vlen[i], rest[i], &num[i]);

	if ((k->has_chat = have[0]))
		k->chat_id = num[0];
	if ((k->has_user = have[1]))
		k->user_id = num[1];
	if (!k->has_user && !k->has_chat && have[3]) {
		k->has_chat = 1;
		k->chat_id = num[3];
	}
	/* A thread only means something inside its chat. */
	if (k->has_chat && have[2]) {
		k->has_thread = 1;
		k->thread_id = num[2];
	}
	return 0;
}

/* "a.b.c" -> "a" and "b.c" (NULL for a single step); -1 if "a" is too long. */
static int split_path(const char *path, char first[32], const char **rest)
{
	const char *dot = strchr(path, '.');
	size_t len = dot ? (size_t)(dot - path) : strlen(path);

	if (len >= 32)
		return -1;
	memcpy(first, path, len);
	first[len] = '\0';
	*rest = dot ? dot + 1 : NULL;
	return 0;
}

int keys_extract_raw(const char *json, size_t len, struct update_keys *k)
{
	return extract_raw(json, len, k, 0);
}

int keys_extract_raw_valid(const char *json, size_t len, struct update_keys *k)
{
	return extract_raw(json, len, k, 1);
}

/*
 * get_int() on raw bytes keys_extract_raw() has already validated; a NULL
 * path is the value itself.
 */
static int get_int_raw(const char *obj, size_t len, const char *path,
    int64_t *out)
{
	char seg[4][32];
	const char *segs[4], *val = obj;
	size_t n = 0, vlen = len;

	while (path != NULL) {
		if (n == 4 || split_path(path, seg[n], &path) != 0)
			return 0;
		segs[n] = seg[n];
		n++;
	}
	if (n > 0 && jscan_get_valid(obj, len, segs, n, &val, &vlen) != 1)
		return 0;
	return jscan_int64(val, vlen, out) == 0;
}
