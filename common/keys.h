/* Update types and the chat, user and thread each belongs to: one table for master and worker. */
#ifndef TGRUN_KEYS_H
#define TGRUN_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/*
 * Every field of the Bot API's Update object (Bot API 10.2), plus UNKNOWN.
 * The values are bits of [order] bypass; new types go at the end.
 */
enum update_type {
	UPD_UNKNOWN = 0,
	UPD_MESSAGE,
	UPD_EDITED_MESSAGE,
	UPD_CHANNEL_POST,
	UPD_EDITED_CHANNEL_POST,
	UPD_BUSINESS_CONNECTION,
	UPD_BUSINESS_MESSAGE,
	UPD_EDITED_BUSINESS_MESSAGE,
	UPD_DELETED_BUSINESS_MESSAGES,
	UPD_MESSAGE_REACTION,
	UPD_MESSAGE_REACTION_COUNT,
	UPD_INLINE_QUERY,
	UPD_CHOSEN_INLINE_RESULT,
	UPD_CALLBACK_QUERY,
	UPD_SHIPPING_QUERY,
	UPD_PRE_CHECKOUT_QUERY,
	UPD_PURCHASED_PAID_MEDIA,
	UPD_POLL,
	UPD_POLL_ANSWER,
	UPD_MY_CHAT_MEMBER,
	UPD_CHAT_MEMBER,
	UPD_CHAT_JOIN_REQUEST,
	UPD_CHAT_BOOST,
	UPD_REMOVED_CHAT_BOOST,
	UPD_GUEST_MESSAGE,
	UPD_MANAGED_BOT,
	UPD_SUBSCRIPTION,
	UPD__COUNT
};

/* "message" -> UPD_MESSAGE; UPD_UNKNOWN if not a known name. */
enum update_type keys_type_from_name(const char *name);
/* The Update field's name; "unknown" for UPD_UNKNOWN or out of range. */
const char *keys_type_name(enum update_type t);

/*
 * Where one update type carries its keys, as data both processes walk: the
 * master over raw bytes (common/jscan.h), the worker over jansson. Each path
 * is a NULL-terminated list of object keys, starting inside the type's
 * object (the value of the Update field) and ending on an integer id; a NULL
 * path means the type has none. `user_alt` is tried when `user` finds
 * nothing; `chat_alt` only when neither a chat nor a user was found (a poll
 * answer from an anonymous chat: the chat voted); `thread` (a forum topic)
 * only with a chat.
 */
struct keys_rule {
	const char *const *chat;
	const char *const *user;
	const char *const *user_alt;
	const char *const *chat_alt;
	const char *const *thread;
};

/*
 * The rule of type `t`. For UPD_UNKNOWN it is the one generic rule every
 * type missing from the table gets: the chat from "chat.id", the user from
 * "from.id" or else "user.id".
 */
const struct keys_rule *keys_rule(enum update_type t);

/*
 * Longest type name kept, with its NUL; longer top-level keys, and the empty
 * key, are passed over.
 */
#define KEYS_NAME_MAX 64

/* What ordering needs to know about one update. has_* = 0 when absent. */
struct update_keys {
	int64_t update_id;
	/*
	 * The type: the first top-level key other than update_id that names a
	 * type in the table (in document order); if there is none, the first
	 * other key at all, as UPD_UNKNOWN keyed by the generic rule.
	 */
	enum update_type type;
	char name[KEYS_NAME_MAX];	/* that key; "" when the update has no other key */
	int has_chat, has_user, has_thread;
	int64_t chat_id;
	int64_t user_id;
	int64_t thread_id;	/* only with has_chat */
};

/*
 * Fill `k` from a parsed update object (the worker's view). Returns 0, or -1
 * with `k` zeroed when it is not an object with an integer update_id.
 */
int keys_extract(const json_t *update, struct update_keys *k);

/*
 * keys_extract() on the raw bytes of one update, without a DOM (the
 * master's view): the same type rule, paths, fallbacks and results for any
 * update jansson loads (a duplicate key counts where it first appears, with
 * its last value, as jansson keeps it). Returns -1 also when json[0..len) is
 * not one valid JSON value (common/jscan.h's rules, surrounding whitespace
 * allowed), which includes what jansson refuses in well-formed text
 * ("\u0000", an integer beyond int64, a real that overflows).
 *
 * A type missing from the table is logged once per name (notice level,
 * up to 16 names): the master, which orders by these keys, says so; the
 * workers' keys_extract() stays quiet.
 */
int keys_extract_raw(const char *json, size_t len, struct update_keys *k)
    __attribute__((warn_unused_result));
/*
 * keys_extract_raw() for bytes already validated as one JSON value (an
 * element jscan_result_array() handed out): it does not check them again.
 * Well-formed is enough: on an element handed out with a JSCAN_E* code it
 * still finds update_id and the keys, an integer beyond int64 is not an
 * integer there and a key holding "\u0000" matches nothing.
 */
int keys_extract_raw_valid(const char *json, size_t len, struct update_keys *k)
    __attribute__((warn_unused_result));

#endif
