/* Update types and the sequencing keys extracted from an update. */
#ifndef TGRUN_KEYS_H
#define TGRUN_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/* Every update type Telegram defines (Bot API 7.x/8.x), plus UNKNOWN. */
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
	UPD__COUNT
};

/* "message" -> UPD_MESSAGE; UPD_UNKNOWN if not a known name. */
enum update_type keys_type_from_name(const char *name);
const char *keys_type_name(enum update_type t);

/* What sequencing needs to know about one update. has_* = 0 when absent. */
struct update_keys {
	int64_t update_id;
	enum update_type type;
	int has_chat, has_user, has_thread;
	int64_t chat_id;
	int64_t user_id;
	int64_t thread_id;	/* message_thread_id, only with has_chat */
};

/*
 * Fill `k` from a parsed update object. Returns 0, or -1 when the object has
 * no integer update_id. The update type is the first field other than
 * update_id; the chat/user/thread come from where that type carries them
 * (message.chat, callback_query.from and callback_query.message.chat,
 * poll_answer.user, message_reaction.user, chat_boost.chat, ...).
 */
int keys_extract(const json_t *update, struct update_keys *k);

/*
 * keys_extract() on the raw bytes of one update, without a DOM: the same
 * type rule, paths, fallbacks and results for any update jansson loads (a
 * duplicate key counts where it first appears, with its last value, as
 * jansson keeps it). Returns -1 also when json[0..len) is not one valid JSON
 * value (common/jscan.h's rules, surrounding whitespace allowed), which
 * includes what jansson refuses in well-formed text ("\u0000", an integer
 * beyond int64, a real that overflows).
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

#define KEYS_MAX 3
/*
 * The sequencing keys for `k` under CFG_SEQ_* bits `seq`, as 64-bit hashes
 * distinct per kind (a chat id never equals a user id key). A kind the update
 * does not carry gives no key; CFG_SEQ_CHAT_THREAD on an update without a
 * thread gives the chat key, so it still orders within its chat. Equal keys
 * are written once. Returns how many (0..KEYS_MAX) were written to `out`.
 */
int keys_for(const struct update_keys *k, unsigned seq, uint64_t out[KEYS_MAX]);

#endif
