/* Update types and the chat/user/thread keys of each: the table master and worker share. */
#include "keys.h"

#include <string.h>

#include "jscan.h"
#include "log.h"

/* Indexed by enum update_type; the names are the Bot API's Update field names. */
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
	[UPD_GUEST_MESSAGE] = "guest_message",
	[UPD_MANAGED_BOT] = "managed_bot",
	[UPD_SUBSCRIPTION] = "subscription",
};

/* A path of object keys to an integer; file-scope literals are static. */
#define PATH(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define CHAT_ID PATH("chat", "id")
#define FROM_ID PATH("from", "id")
#define USER_ID PATH("user", "id")

/* A Message: its chat, its sender, its forum topic. */
#define MSG { .chat = CHAT_ID, .user = FROM_ID, \
	.thread = PATH("message_thread_id") }
#define CHAT_FROM { .chat = CHAT_ID, .user = FROM_ID }
#define FROM_ONLY { .user = FROM_ID }
#define USER_ONLY { .user = USER_ID }

/* Indexed by enum update_type; README.md ("Keys of every update type") lists it. */
static const struct keys_rule rules[UPD__COUNT] = {
	/* The generic rule for a type this table does not know. */
	[UPD_UNKNOWN] = { .chat = CHAT_ID, .user = FROM_ID, .user_alt = USER_ID },
	[UPD_MESSAGE] = MSG,
	[UPD_EDITED_MESSAGE] = MSG,
	[UPD_CHANNEL_POST] = MSG,
	[UPD_EDITED_CHANNEL_POST] = MSG,
	[UPD_BUSINESS_CONNECTION] = USER_ONLY,
	[UPD_BUSINESS_MESSAGE] = MSG,
	[UPD_EDITED_BUSINESS_MESSAGE] = MSG,
	[UPD_DELETED_BUSINESS_MESSAGES] = { .chat = CHAT_ID },
	[UPD_MESSAGE_REACTION] = { .chat = CHAT_ID, .user = USER_ID },
	[UPD_MESSAGE_REACTION_COUNT] = { .chat = CHAT_ID },
	[UPD_INLINE_QUERY] = FROM_ONLY,
	[UPD_CHOSEN_INLINE_RESULT] = FROM_ONLY,
	[UPD_CALLBACK_QUERY] = { .chat = PATH("message", "chat", "id"),
	    .user = FROM_ID, .thread = PATH("message", "message_thread_id") },
	[UPD_SHIPPING_QUERY] = FROM_ONLY,
	[UPD_PRE_CHECKOUT_QUERY] = FROM_ONLY,
	[UPD_PURCHASED_PAID_MEDIA] = FROM_ONLY,
	[UPD_POLL] = { 0 },
	[UPD_POLL_ANSWER] = { .user = USER_ID, .chat_alt = PATH("voter_chat", "id") },
	[UPD_MY_CHAT_MEMBER] = CHAT_FROM,
	[UPD_CHAT_MEMBER] = CHAT_FROM,
	[UPD_CHAT_JOIN_REQUEST] = CHAT_FROM,
	[UPD_CHAT_BOOST] = { .chat = CHAT_ID,
	    .user = PATH("boost", "source", "user", "id") },
	/* The removed boost names its booster too; order it with chat_boost. */
	[UPD_REMOVED_CHAT_BOOST] = { .chat = CHAT_ID,
	    .user = PATH("source", "user", "id") },
	/* A guest query is a Message from a chat the bot need not be in. */
	[UPD_GUEST_MESSAGE] = MSG,
	[UPD_MANAGED_BOT] = USER_ONLY,		/* the user who owns the bot */
	[UPD_SUBSCRIPTION] = USER_ONLY,		/* the subscriber */
};

/* The paths of a rule, in the order combine() reads them. */
enum { P_CHAT, P_USER, P_USER_ALT, P_CHAT_ALT, P_THREAD, P__N };

static void rule_paths(const struct keys_rule *r, const char *const *p[P__N]);
static void combine(struct update_keys *k, const int have[P__N],
    const int64_t num[P__N]);
static int get_int(const json_t *obj, const char *const *path, int64_t *out);
static int get_int_raw(const char *obj, size_t len, const char *const *path,
    int64_t *out);
static void note_unknown(const char *name);

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

const struct keys_rule *keys_rule(enum update_type t)
{
	if ((int)t <= UPD_UNKNOWN || (int)t >= UPD__COUNT)
		return &rules[UPD_UNKNOWN];
	return &rules[t];
}

int keys_extract(const json_t *update, struct update_keys *k)
{
	const char *const *paths[P__N];
	const char *name, *first = NULL;
	const json_t *id, *v, *body = NULL;
	int64_t num[P__N];
	int have[P__N], i;

	memset(k, 0, sizeof(*k));
	if (!json_is_object(update))
		return -1;
	id = json_object_get(update, "update_id");
	if (!json_is_integer(id))
		return -1;
	k->update_id = json_integer_value(id);

	/* json_object_foreach wants a non-const object; it only reads. */
	json_object_foreach((json_t *)update, name, v) {
		if (strcmp(name, "update_id") == 0 || name[0] == '\0' ||
		    strlen(name) >= KEYS_NAME_MAX)
			continue;
		if ((k->type = keys_type_from_name(name)) != UPD_UNKNOWN) {
			first = name;
			body = v;
			break;
		}
		if (first == NULL) {
			first = name;
			body = v;
		}
	}
	if (first == NULL)
		return 0;
	strcpy(k->name, first);
	if (!json_is_object(body))
		return 0;
	rule_paths(keys_rule(k->type), paths);
	for (i = 0; i < P__N; i++)
		have[i] = paths[i] != NULL && get_int(body, paths[i], &num[i]);
	combine(k, have, num);
	return 0;
}

/*
 * keys_extract() without jansson. One pass over the update's members finds
 * update_id (last wins, like json_object_get) and the type: the first known
 * name in document order, else the first other name, whose value is its
 * last occurrence (jansson keeps a duplicate key at its first position with
 * the last value). k->name[0] says whether a name was taken, which is why
 * both walkers pass over the empty key. A second pass, over the type's
 * object only, collects the first step of every path of the rule.
 */
static int extract_raw(const char *json, size_t len, struct update_keys *k,
    int trusted)
{
	const char *const *paths[P__N];
	const char *val[P__N] = { NULL }, *id = NULL, *body = NULL;
	const char *end = json + len, *q;
	size_t idlen = 0, blen = 0, vlen[P__N] = { 0 };
	int64_t num[P__N];
	int have[P__N] = { 0 }, rc, i;
	struct jscan_iter it;
	struct jscan_member m;
	char name[KEYS_NAME_MAX];
	enum update_type t;

	memset(k, 0, sizeof(*k));
	if (jscan_object_begin(&it, json, len) != 0)
		return -1;
	it.trusted = trusted;
	while ((rc = jscan_object_next(&it, &m)) == 1) {
		if (jscan_key_eq(&m, "update_id")) {
			id = m.val;
			idlen = m.vlen;
		} else if (k->type != UPD_UNKNOWN || k->name[0] != '\0') {
			/* A repeat of the type's key: jansson keeps the last value. */
			if (jscan_key_eq(&m, k->name)) {
				body = m.val;
				blen = m.vlen;
			} else if (k->type == UPD_UNKNOWN &&
			    jscan_key_copy(&m, name, sizeof(name)) > 0 &&
			    (t = keys_type_from_name(name)) != UPD_UNKNOWN) {
				/* A known type after an unknown key wins. */
				k->type = t;
				memcpy(k->name, name, sizeof(name));
				body = m.val;
				blen = m.vlen;
			}
		} else if (jscan_key_copy(&m, name, sizeof(name)) > 0) {
			k->type = keys_type_from_name(name);
			memcpy(k->name, name, sizeof(name));
			body = m.val;
			blen = m.vlen;
		}
	}
	for (q = it.p; rc == 0 && q < end; q++)
		if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r')
			rc = -1;
	if (rc != 0 || id == NULL || jscan_int64(id, idlen, &k->update_id) != 0) {
		memset(k, 0, sizeof(*k));
		return -1;
	}
	if (k->type == UPD_UNKNOWN && k->name[0] != '\0')
		note_unknown(k->name);
	if (body == NULL || *body != '{')
		return 0;

	/* The update is valid now: walk the type's object without re-checking. */
	rule_paths(keys_rule(k->type), paths);
	if (jscan_object_begin(&it, body, blen) != 0)
		return 0;
	it.trusted = 1;
	while (jscan_object_next(&it, &m) == 1)
		for (i = 0; i < P__N; i++)
			if (paths[i] != NULL && jscan_key_eq(&m, paths[i][0])) {
				val[i] = m.val;
				vlen[i] = m.vlen;
			}
	for (i = 0; i < P__N; i++)
		if (val[i] != NULL)
			have[i] = get_int_raw(val[i], vlen[i], paths[i] + 1, &num[i]);
	combine(k, have, num);
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

static void rule_paths(const struct keys_rule *r, const char *const *p[P__N])
{
	p[P_CHAT] = r->chat;
	p[P_USER] = r->user;
	p[P_USER_ALT] = r->user_alt;
	p[P_CHAT_ALT] = r->chat_alt;
	p[P_THREAD] = r->thread;
}

/* The fallbacks of struct keys_rule, the same for both walkers. */
static void combine(struct update_keys *k, const int have[P__N],
    const int64_t num[P__N])
{
	if ((k->has_chat = have[P_CHAT]))
		k->chat_id = num[P_CHAT];
	if ((k->has_user = have[P_USER]))
		k->user_id = num[P_USER];
	else if ((k->has_user = have[P_USER_ALT]))
		k->user_id = num[P_USER_ALT];
	if (!k->has_user && !k->has_chat && (k->has_chat = have[P_CHAT_ALT]))
		k->chat_id = num[P_CHAT_ALT];
	/* A thread only means something inside its chat. */
	if (k->has_chat && (k->has_thread = have[P_THREAD]))
		k->thread_id = num[P_THREAD];
}

/* Follow `path` through nested objects; 1 and *out set if it ends on an integer. */
static int get_int(const json_t *obj, const char *const *path, int64_t *out)
{
	for (; *path != NULL; path++)
		obj = json_object_get(obj, *path);	/* NULL-safe, non-objects give NULL */
	if (!json_is_integer(obj))
		return 0;
	*out = json_integer_value(obj);
	return 1;
}

/*
 * get_int() on raw bytes extract_raw() has already validated; an empty
 * path is the value itself.
 */
static int get_int_raw(const char *obj, size_t len, const char *const *path,
    int64_t *out)
{
	const char *val = obj;
	size_t n = 0, vlen = len;

	while (path[n] != NULL)
		n++;
	if (n > 0 && jscan_get_valid(obj, len, path, n, &val, &vlen) != 1)
		return 0;
	return jscan_int64(val, vlen, out) == 0;
}

/*
 * A type the table does not know is still ordered by the generic rule, but
 * someone should add it: say so once per name. The memo is bounded so that
 * a stream of made-up names cannot grow it or flood the log.
 */
static void note_unknown(const char *name)
{
	enum { NOTED = 16 };
	static char noted[NOTED][KEYS_NAME_MAX];
	static int n;
	int i;

	for (i = 0; i < n && i < NOTED; i++)
		if (strcmp(noted[i], name) == 0)
			return;
	if (n == NOTED) {
		log_notice("update type \"%s\" is not in the key table either; "
		    "further unknown types are not logged", name);
		n++;
		return;
	}
	if (n > NOTED)
		return;
	strcpy(noted[n++], name);
	log_notice("update type \"%s\" is not in the key table; it is ordered by "
	    "its chat.id and its from.id or user.id", name);
}
