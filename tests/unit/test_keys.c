/* Unit tests for daemon/keys.c: update types, key extraction, sequencing keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"
#include "keys.h"

/* Expected: -1 rc, or the fields; NO means absent. */
#define NO INT64_MIN

struct extract_case {
	const char *name;
	const char *json;
	int rc;
	enum update_type type;
	int64_t chat, user, thread;
};

#define USER(id) "{\"id\":" #id ",\"is_bot\":false,\"first_name\":\"Ann\"}"
#define PRIV(id) "{\"id\":" #id ",\"type\":\"private\",\"first_name\":\"Ann\"}"
#define SUPERGROUP "{\"id\":-1001234567890,\"type\":\"supergroup\",\"title\":\"G\"}"
#define FORUM "{\"id\":-1001234567890,\"type\":\"supergroup\",\"title\":\"F\",\"is_forum\":true}"
#define CHANNEL "{\"id\":-1009876543210,\"type\":\"channel\",\"title\":\"C\"}"
#define MEMBER(id) "{\"status\":\"member\",\"user\":" USER(id) "}"
#define LEFT(id) "{\"status\":\"left\",\"user\":" USER(id) "}"
#define GROUP_ID INT64_C(-1001234567890)
#define CHANNEL_ID INT64_C(-1009876543210)

static const struct extract_case extract_cases[] = {
	/* Every update type Telegram defines. */
	{ "message private",
	  "{\"update_id\":1,\"message\":{\"message_id\":5,\"from\":" USER(111)
	  ",\"chat\":" PRIV(111) ",\"date\":1700000000,\"text\":\"hi\"}}",
	  0, UPD_MESSAGE, 111, 111, NO },
	{ "message forum topic",
	  "{\"update_id\":2,\"message\":{\"message_id\":6,\"message_thread_id\":77,"
	  "\"is_topic_message\":true,\"from\":" USER(112) ",\"chat\":" FORUM
	  ",\"date\":1700000000,\"text\":\"in topic\"}}",
	  0, UPD_MESSAGE, GROUP_ID, 112, 77 },
	{ "message group no thread",
	  "{\"update_id\":3,\"message\":{\"message_id\":7,\"from\":" USER(113)
	  ",\"chat\":" SUPERGROUP ",\"date\":1700000000,\"text\":\"x\"}}",
	  0, UPD_MESSAGE, GROUP_ID, 113, NO },
	{ "message anonymous admin",
	  "{\"update_id\":4,\"message\":{\"message_id\":8,\"sender_chat\":" SUPERGROUP
	  ",\"chat\":" SUPERGROUP ",\"date\":1700000000,\"text\":\"x\"}}",
	  0, UPD_MESSAGE, GROUP_ID, NO, NO },
	{ "edited_message",
	  "{\"update_id\":5,\"edited_message\":{\"message_id\":5,\"from\":" USER(111)
	  ",\"chat\":" PRIV(111) ",\"date\":1700000000,\"edit_date\":1700000100,"
	  "\"text\":\"hi!\"}}",
	  0, UPD_EDITED_MESSAGE, 111, 111, NO },
	{ "edited_message in topic",
	  "{\"update_id\":6,\"edited_message\":{\"message_id\":6,\"message_thread_id\":77,"
	  "\"is_topic_message\":true,\"from\":" USER(112) ",\"chat\":" FORUM
	  ",\"date\":1700000000,\"edit_date\":1700000100,\"text\":\"y\"}}",
	  0, UPD_EDITED_MESSAGE, GROUP_ID, 112, 77 },
	{ "channel_post",
	  "{\"update_id\":7,\"channel_post\":{\"message_id\":9,\"sender_chat\":" CHANNEL
	  ",\"chat\":" CHANNEL ",\"date\":1700000000,\"text\":\"news\"}}",
	  0, UPD_CHANNEL_POST, CHANNEL_ID, NO, NO },
	{ "edited_channel_post",
	  "{\"update_id\":8,\"edited_channel_post\":{\"message_id\":9,\"sender_chat\":"
	  CHANNEL ",\"chat\":" CHANNEL ",\"date\":1700000000,\"edit_date\":1700000200,"
	  "\"text\":\"news!\"}}",
	  0, UPD_EDITED_CHANNEL_POST, CHANNEL_ID, NO, NO },
	{ "business_connection",
	  "{\"update_id\":9,\"business_connection\":{\"id\":\"bc1\",\"user\":" USER(222)
	  ",\"user_chat_id\":222,\"date\":1700000000,\"can_reply\":true,"
	  "\"is_enabled\":true}}",
	  0, UPD_BUSINESS_CONNECTION, NO, 222, NO },
	{ "business_message",
	  "{\"update_id\":10,\"business_message\":{\"message_id\":1,"
	  "\"business_connection_id\":\"bc1\",\"from\":" USER(333) ",\"chat\":" PRIV(333)
	  ",\"date\":1700000000,\"text\":\"hello shop\"}}",
	  0, UPD_BUSINESS_MESSAGE, 333, 333, NO },
	{ "edited_business_message",
	  "{\"update_id\":11,\"edited_business_message\":{\"message_id\":1,"
	  "\"business_connection_id\":\"bc1\",\"from\":" USER(333) ",\"chat\":" PRIV(333)
	  ",\"date\":1700000000,\"edit_date\":1700000050,\"text\":\"hello!\"}}",
	  0, UPD_EDITED_BUSINESS_MESSAGE, 333, 333, NO },
	{ "deleted_business_messages",
	  "{\"update_id\":12,\"deleted_business_messages\":{\"business_connection_id\":"
	  "\"bc1\",\"chat\":" PRIV(333) ",\"message_ids\":[1,2]}}",
	  0, UPD_DELETED_BUSINESS_MESSAGES, 333, NO, NO },
	{ "message_reaction",
	  "{\"update_id\":13,\"message_reaction\":{\"chat\":" SUPERGROUP
	  ",\"message_id\":7,\"user\":" USER(444) ",\"date\":1700000000,"
	  "\"old_reaction\":[],\"new_reaction\":[{\"type\":\"emoji\",\"emoji\":\"x\"}]}}",
	  0, UPD_MESSAGE_REACTION, GROUP_ID, 444, NO },
	{ "message_reaction actor_chat",
	  "{\"update_id\":14,\"message_reaction\":{\"chat\":" SUPERGROUP
	  ",\"message_id\":7,\"actor_chat\":" CHANNEL ",\"date\":1700000000,"
	  "\"old_reaction\":[],\"new_reaction\":[]}}",
	  0, UPD_MESSAGE_REACTION, GROUP_ID, NO, NO },
	{ "message_reaction_count",
	  "{\"update_id\":15,\"message_reaction_count\":{\"chat\":" CHANNEL
	  ",\"message_id\":9,\"date\":1700000000,\"reactions\":[{\"type\":"
	  "{\"type\":\"emoji\",\"emoji\":\"x\"},\"total_count\":3}]}}",
	  0, UPD_MESSAGE_REACTION_COUNT, CHANNEL_ID, NO, NO },
	{ "inline_query",
	  "{\"update_id\":16,\"inline_query\":{\"id\":\"q1\",\"from\":" USER(555)
	  ",\"query\":\"cats\",\"offset\":\"\",\"chat_type\":\"sender\"}}",
	  0, UPD_INLINE_QUERY, NO, 555, NO },
	{ "chosen_inline_result",
	  "{\"update_id\":17,\"chosen_inline_result\":{\"result_id\":\"r1\",\"from\":"
	  USER(555) ",\"query\":\"cats\",\"inline_message_id\":\"im1\"}}",
	  0, UPD_CHOSEN_INLINE_RESULT, NO, 555, NO },
	{ "callback_query with message",
	  "{\"update_id\":18,\"callback_query\":{\"id\":\"cb1\",\"from\":" USER(666)
	  ",\"message\":{\"message_id\":20,\"chat\":" SUPERGROUP ",\"date\":1700000000,"
	  "\"text\":\"pick\"},\"chat_instance\":\"ci\",\"data\":\"a\"}}",
	  0, UPD_CALLBACK_QUERY, GROUP_ID, 666, NO },
	{ "callback_query in topic",
	  "{\"update_id\":19,\"callback_query\":{\"id\":\"cb2\",\"from\":" USER(666)
	  ",\"message\":{\"message_id\":21,\"message_thread_id\":77,"
	  "\"is_topic_message\":true,\"chat\":" FORUM ",\"date\":1700000000,"
	  "\"text\":\"pick\"},\"chat_instance\":\"ci\",\"data\":\"b\"}}",
	  0, UPD_CALLBACK_QUERY, GROUP_ID, 666, 77 },
	{ "callback_query inaccessible message",
	  "{\"update_id\":20,\"callback_query\":{\"id\":\"cb3\",\"from\":" USER(666)
	  ",\"message\":{\"message_id\":22,\"chat\":" PRIV(666) ",\"date\":0},"
	  "\"chat_instance\":\"ci\",\"data\":\"c\"}}",
	  0, UPD_CALLBACK_QUERY, 666, 666, NO },
	{ "callback_query inline",
	  "{\"update_id\":21,\"callback_query\":{\"id\":\"cb4\",\"from\":" USER(666)
	  ",\"inline_message_id\":\"im1\",\"chat_instance\":\"ci\",\"data\":\"d\"}}",
	  0, UPD_CALLBACK_QUERY, NO, 666, NO },
	{ "shipping_query",
	  "{\"update_id\":22,\"shipping_query\":{\"id\":\"s1\",\"from\":" USER(777)
	  ",\"invoice_payload\":\"p\",\"shipping_address\":{\"country_code\":\"DE\","
	  "\"state\":\"\",\"city\":\"Berlin\",\"street_line1\":\"A 1\","
	  "\"street_line2\":\"\",\"post_code\":\"10115\"}}}",
	  0, UPD_SHIPPING_QUERY, NO, 777, NO },
	{ "pre_checkout_query",
	  "{\"update_id\":23,\"pre_checkout_query\":{\"id\":\"pc1\",\"from\":" USER(777)
	  ",\"currency\":\"XTR\",\"total_amount\":50,\"invoice_payload\":\"p\"}}",
	  0, UPD_PRE_CHECKOUT_QUERY, NO, 777, NO },
	{ "purchased_paid_media",
	  "{\"update_id\":24,\"purchased_paid_media\":{\"from\":" USER(888)
	  ",\"paid_media_payload\":\"pm\"}}",
	  0, UPD_PURCHASED_PAID_MEDIA, NO, 888, NO },
	{ "poll",
	  "{\"update_id\":25,\"poll\":{\"id\":\"p1\",\"question\":\"?\",\"options\":"
	  "[{\"text\":\"a\",\"voter_count\":1},{\"text\":\"b\",\"voter_count\":0}],"
	  "\"total_voter_count\":1,\"is_closed\":false,\"is_anonymous\":true,"
	  "\"type\":\"regular\",\"allows_multiple_answers\":false}}",
	  0, UPD_POLL, NO, NO, NO },
	{ "poll_answer user",
	  "{\"update_id\":26,\"poll_answer\":{\"poll_id\":\"p1\",\"user\":" USER(999)
	  ",\"option_ids\":[0]}}",
	  0, UPD_POLL_ANSWER, NO, 999, NO },
	{ "poll_answer voter_chat",
	  "{\"update_id\":27,\"poll_answer\":{\"poll_id\":\"p1\",\"voter_chat\":"
	  CHANNEL ",\"option_ids\":[1]}}",
	  0, UPD_POLL_ANSWER, CHANNEL_ID, NO, NO },
	{ "my_chat_member",
	  "{\"update_id\":28,\"my_chat_member\":{\"chat\":" SUPERGROUP ",\"from\":"
	  USER(123) ",\"date\":1700000000,\"old_chat_member\":" LEFT(42)
	  ",\"new_chat_member\":" MEMBER(42) "}}",
	  0, UPD_MY_CHAT_MEMBER, GROUP_ID, 123, NO },
	{ "chat_member",
	  "{\"update_id\":29,\"chat_member\":{\"chat\":" SUPERGROUP ",\"from\":"
	  USER(124) ",\"date\":1700000000,\"old_chat_member\":" LEFT(124)
	  ",\"new_chat_member\":" MEMBER(124) "}}",
	  0, UPD_CHAT_MEMBER, GROUP_ID, 124, NO },
	{ "chat_join_request",
	  "{\"update_id\":30,\"chat_join_request\":{\"chat\":" SUPERGROUP ",\"from\":"
	  USER(125) ",\"user_chat_id\":125,\"date\":1700000000}}",
	  0, UPD_CHAT_JOIN_REQUEST, GROUP_ID, 125, NO },
	{ "chat_boost premium",
	  "{\"update_id\":31,\"chat_boost\":{\"chat\":" CHANNEL ",\"boost\":{"
	  "\"boost_id\":\"b1\",\"add_date\":1700000000,\"expiration_date\":1702592000,"
	  "\"source\":{\"source\":\"premium\",\"user\":" USER(126) "}}}}",
	  0, UPD_CHAT_BOOST, CHANNEL_ID, 126, NO },
	{ "chat_boost giveaway without user",
	  "{\"update_id\":32,\"chat_boost\":{\"chat\":" CHANNEL ",\"boost\":{"
	  "\"boost_id\":\"b2\",\"add_date\":1700000000,\"expiration_date\":1702592000,"
	  "\"source\":{\"source\":\"giveaway\",\"giveaway_message_id\":3,"
	  "\"is_unclaimed\":true}}}}",
	  0, UPD_CHAT_BOOST, CHANNEL_ID, NO, NO },
	{ "removed_chat_boost",
	  "{\"update_id\":33,\"removed_chat_boost\":{\"chat\":" CHANNEL
	  ",\"boost_id\":\"b1\",\"remove_date\":1702592000,\"source\":{"
	  "\"source\":\"premium\",\"user\":" USER(126) "}}}",
	  0, UPD_REMOVED_CHAT_BOOST, CHANNEL_ID, 126, NO },

	/* Shapes that are not quite right. */
	{ "type before update_id",
	  "{\"message\":{\"message_id\":1,\"from\":" USER(1) ",\"chat\":" PRIV(1)
	  ",\"date\":1},\"update_id\":40}",
	  0, UPD_MESSAGE, 1, 1, NO },
	{ "unknown field before the type",
	  "{\"update_id\":41,\"future_thing\":{\"chat\":{\"id\":5}},"
	  "\"message\":{\"message_id\":1,\"chat\":" PRIV(2) ",\"date\":1}}",
	  0, UPD_MESSAGE, 2, NO, NO },
	{ "unknown type",
	  "{\"update_id\":42,\"future_update\":{\"chat\":{\"id\":5},\"from\":{\"id\":6}}}",
	  0, UPD_UNKNOWN, NO, NO, NO },
	{ "only update_id", "{\"update_id\":43}", 0, UPD_UNKNOWN, NO, NO, NO },
	{ "update_id 0 and huge chat id",
	  "{\"update_id\":0,\"message\":{\"message_id\":1,\"chat\":{\"id\":"
	  "-9223372036854775807,\"type\":\"channel\"},\"date\":1}}",
	  0, UPD_MESSAGE, -INT64_C(9223372036854775807), NO, NO },
	{ "chat id as string",
	  "{\"update_id\":44,\"message\":{\"message_id\":1,\"from\":" USER(7)
	  ",\"chat\":{\"id\":\"-100123\",\"type\":\"supergroup\"},"
	  "\"message_thread_id\":5,\"date\":1}}",
	  0, UPD_MESSAGE, NO, 7, NO },
	{ "user id as real",
	  "{\"update_id\":45,\"message\":{\"message_id\":1,\"from\":{\"id\":7.5},"
	  "\"chat\":" PRIV(7) ",\"date\":1}}",
	  0, UPD_MESSAGE, 7, NO, NO },
	{ "thread id as string",
	  "{\"update_id\":46,\"message\":{\"message_id\":1,\"message_thread_id\":\"77\","
	  "\"is_topic_message\":true,\"chat\":" FORUM ",\"date\":1}}",
	  0, UPD_MESSAGE, GROUP_ID, NO, NO },
	{ "chat is not an object",
	  "{\"update_id\":47,\"message\":{\"message_id\":1,\"chat\":-100,"
	  "\"from\":[1],\"date\":1}}",
	  0, UPD_MESSAGE, NO, NO, NO },
	{ "type body not an object",
	  "{\"update_id\":48,\"message\":\"hello\"}", 0, UPD_MESSAGE, NO, NO, NO },
	{ "type body null", "{\"update_id\":49,\"callback_query\":null}",
	  0, UPD_CALLBACK_QUERY, NO, NO, NO },
	{ "callback message null",
	  "{\"update_id\":50,\"callback_query\":{\"id\":\"c\",\"from\":" USER(3)
	  ",\"message\":null}}",
	  0, UPD_CALLBACK_QUERY, NO, 3, NO },
	{ "poll_answer user wins over voter_chat",
	  "{\"update_id\":51,\"poll_answer\":{\"poll_id\":\"p\",\"user\":" USER(8)
	  ",\"voter_chat\":" CHANNEL ",\"option_ids\":[]}}",
	  0, UPD_POLL_ANSWER, NO, 8, NO },
	{ "no update_id",
	  "{\"message\":{\"message_id\":1,\"chat\":" PRIV(1) ",\"date\":1}}",
	  -1, UPD_UNKNOWN, NO, NO, NO },
	{ "update_id string",
	  "{\"update_id\":\"52\",\"message\":{\"message_id\":1,\"chat\":" PRIV(1)
	  ",\"date\":1}}",
	  -1, UPD_UNKNOWN, NO, NO, NO },
	{ "update_id real", "{\"update_id\":53.0,\"poll\":{}}",
	  -1, UPD_UNKNOWN, NO, NO, NO },
	{ "update_id null", "{\"update_id\":null}", -1, UPD_UNKNOWN, NO, NO, NO },
	{ "empty object", "{}", -1, UPD_UNKNOWN, NO, NO, NO },
	{ "array", "[{\"update_id\":1,\"poll\":{}}]", -1, UPD_UNKNOWN, NO, NO, NO },
	{ "empty array", "[]", -1, UPD_UNKNOWN, NO, NO, NO },
	{ "number", "54", -1, UPD_UNKNOWN, NO, NO, NO },
	{ "string", "\"update\"", -1, UPD_UNKNOWN, NO, NO, NO },
};

static void check_one(const struct extract_case *c)
{
	struct update_keys k;
	json_error_t jerr;
	json_t *j;
	int rc;

	j = json_loads(c->json, JSON_DECODE_ANY, &jerr);
	if (j == NULL)
		fail_msg("%s: bad test JSON: %s (column %d)", c->name, jerr.text,
		    jerr.column);
	memset(&k, 0xa5, sizeof(k));
	rc = keys_extract(j, &k);
	json_decref(j);

	if (rc != c->rc)
		fail_msg("%s: rc %d, expected %d", c->name, rc, c->rc);
	if (k.type != c->type)
		fail_msg("%s: type %s, expected %s", c->name,
		    keys_type_name(k.type), keys_type_name(c->type));
	if (k.has_chat != (c->chat != NO) || (k.has_chat && k.chat_id != c->chat))
		fail_msg("%s: chat has=%d %lld", c->name, k.has_chat,
		    (long long)k.chat_id);
	if (k.has_user != (c->user != NO) || (k.has_user && k.user_id != c->user))
		fail_msg("%s: user has=%d %lld", c->name, k.has_user,
		    (long long)k.user_id);
	if (k.has_thread != (c->thread != NO) ||
	    (k.has_thread && k.thread_id != c->thread))
		fail_msg("%s: thread has=%d %lld", c->name, k.has_thread,
		    (long long)k.thread_id);
}

static void test_extract_table(void **state)
{
	size_t i;
	int seen[UPD__COUNT] = { 0 };

	for (i = 0; i < sizeof(extract_cases) / sizeof(extract_cases[0]); i++) {
		check_one(&extract_cases[i]);
		if (extract_cases[i].rc == 0)
			seen[extract_cases[i].type] = 1;
	}
	/* The table must cover every type Telegram defines. */
	for (i = 0; i < UPD__COUNT; i++)
		if (!seen[i])
			fail_msg("no sample for update type %s",
			    keys_type_name((enum update_type)i));
}

static void test_extract_update_id(void **state)
{
	struct update_keys k;
	json_t *j;

	j = json_pack("{s:I, s:{s:i, s:{s:I}}}", "update_id",
	    (json_int_t)987654321012LL, "message", "message_id", 1, "chat",
	    "id", (json_int_t)5);
	assert_non_null(j);
	assert_int_equal(keys_extract(j, &k), 0);
	assert_int_equal(k.update_id, 987654321012LL);
	assert_int_equal(k.type, UPD_MESSAGE);
	json_decref(j);

	assert_int_equal(keys_extract(NULL, &k), -1);
	assert_int_equal(k.type, UPD_UNKNOWN);
	assert_int_equal(k.has_chat, 0);
}

static void test_type_names(void **state)
{
	int t;

	for (t = UPD_UNKNOWN + 1; t < UPD__COUNT; t++) {
		const char *name = keys_type_name((enum update_type)t);

		assert_non_null(name);
		assert_string_not_equal(name, "unknown");
		assert_int_equal(keys_type_from_name(name), t);
	}
	assert_string_equal(keys_type_name(UPD_MESSAGE), "message");
	assert_string_equal(keys_type_name(UPD_REMOVED_CHAT_BOOST),
	    "removed_chat_boost");
	assert_string_equal(keys_type_name(UPD_UNKNOWN), "unknown");
	assert_string_equal(keys_type_name(UPD__COUNT), "unknown");
	assert_string_equal(keys_type_name((enum update_type)-1), "unknown");
	assert_int_equal(keys_type_from_name("unknown"), UPD_UNKNOWN);
	assert_int_equal(keys_type_from_name("update_id"), UPD_UNKNOWN);
	assert_int_equal(keys_type_from_name("Message"), UPD_UNKNOWN);
	assert_int_equal(keys_type_from_name(""), UPD_UNKNOWN);
	assert_int_equal(keys_type_from_name(NULL), UPD_UNKNOWN);
}

/* keys_for: chat/user/thread ids (NO = absent), the CFG_SEQ bits, what comes out. */
struct for_case {
	const char *name;
	int64_t chat, user, thread;
	unsigned seq;
	int n;
	/* Which key each output is: 'c' chat, 'u' user, 't' chat+thread. */
	const char *kinds;
};

static const struct for_case for_cases[] = {
	{ "none configured", 5, 6, 7, CFG_SEQ_NONE, 0, "" },
	{ "nothing to key on", NO, NO, NO, CFG_SEQ_CHAT | CFG_SEQ_USER |
	  CFG_SEQ_CHAT_THREAD, 0, "" },
	{ "chat", -100, 6, NO, CFG_SEQ_CHAT, 1, "c" },
	{ "chat absent", NO, 6, NO, CFG_SEQ_CHAT, 0, "" },
	{ "user", -100, 6, NO, CFG_SEQ_USER, 1, "u" },
	{ "user absent", -100, NO, NO, CFG_SEQ_USER, 0, "" },
	{ "chat user", -100, 6, NO, CFG_SEQ_CHAT | CFG_SEQ_USER, 2, "cu" },
	{ "chat user private chat", 6, 6, NO, CFG_SEQ_CHAT | CFG_SEQ_USER, 2, "cu" },
	{ "chat_thread with thread", -100, 6, 77, CFG_SEQ_CHAT_THREAD, 1, "t" },
	{ "chat_thread without thread", -100, 6, NO, CFG_SEQ_CHAT_THREAD, 1, "c" },
	{ "chat_thread no chat", NO, 6, NO, CFG_SEQ_CHAT_THREAD, 0, "" },
	{ "chat + chat_thread dedup", -100, 6, NO,
	  CFG_SEQ_CHAT | CFG_SEQ_CHAT_THREAD, 1, "c" },
	{ "chat + chat_thread with thread", -100, 6, 77,
	  CFG_SEQ_CHAT | CFG_SEQ_CHAT_THREAD, 2, "ct" },
	{ "all three", -100, 6, 77,
	  CFG_SEQ_CHAT | CFG_SEQ_USER | CFG_SEQ_CHAT_THREAD, 3, "cut" },
	{ "all three no thread", -100, 6, NO,
	  CFG_SEQ_CHAT | CFG_SEQ_USER | CFG_SEQ_CHAT_THREAD, 2, "cu" },
	{ "user + chat_thread", -100, 6, 77, CFG_SEQ_USER | CFG_SEQ_CHAT_THREAD,
	  2, "ut" },
	{ "zero ids", 0, 0, 0, CFG_SEQ_CHAT | CFG_SEQ_USER | CFG_SEQ_CHAT_THREAD,
	  3, "cut" },
};

static struct update_keys mk(int64_t chat, int64_t user, int64_t thread)
{
	struct update_keys k;

	memset(&k, 0, sizeof(k));
	k.update_id = 1;
	k.type = UPD_MESSAGE;
	if (chat != NO) {
		k.has_chat = 1;
		k.chat_id = chat;
	}
	if (user != NO) {
		k.has_user = 1;
		k.user_id = user;
	}
	if (thread != NO) {
		k.has_thread = 1;
		k.thread_id = thread;
	}
	return k;
}

static uint64_t one_key(int64_t chat, int64_t user, int64_t thread, unsigned seq)
{
	struct update_keys k = mk(chat, user, thread);
	uint64_t out[KEYS_MAX];

	assert_int_equal(keys_for(&k, seq, out), 1);
	return out[0];
}

static void test_keys_for_table(void **state)
{
	size_t i;
	int j, n;

	for (i = 0; i < sizeof(for_cases) / sizeof(for_cases[0]); i++) {
		const struct for_case *c = &for_cases[i];
		struct update_keys k = mk(c->chat, c->user, c->thread);
		uint64_t out[KEYS_MAX], want;

		n = keys_for(&k, c->seq, out);
		if (n != c->n)
			fail_msg("%s: %d keys, expected %d", c->name, n, c->n);
		for (j = 0; j < n; j++) {
			switch (c->kinds[j]) {
			case 'c':
				want = one_key(c->chat, NO, NO, CFG_SEQ_CHAT);
				break;
			case 'u':
				want = one_key(NO, c->user, NO, CFG_SEQ_USER);
				break;
			default:
				want = one_key(c->chat, NO, c->thread,
				    CFG_SEQ_CHAT_THREAD);
				break;
			}
			if (out[j] != want)
				fail_msg("%s: key %d is not the '%c' key", c->name,
				    j, c->kinds[j]);
		}
	}
}

static void test_keys_distinct(void **state)
{
	uint64_t chat5 = one_key(5, NO, NO, CFG_SEQ_CHAT);

	/* Same number, different kinds. */
	assert_int_not_equal(chat5, one_key(NO, 5, NO, CFG_SEQ_USER));
	assert_int_not_equal(chat5, one_key(5, NO, 5, CFG_SEQ_CHAT_THREAD));
	assert_int_not_equal(chat5, one_key(5, NO, 0, CFG_SEQ_CHAT_THREAD));
	assert_int_not_equal(one_key(NO, 5, NO, CFG_SEQ_USER),
	    one_key(5, NO, 5, CFG_SEQ_CHAT_THREAD));
	/* Different values of one kind. */
	assert_int_not_equal(chat5, one_key(6, NO, NO, CFG_SEQ_CHAT));
	assert_int_not_equal(chat5, one_key(-5, NO, NO, CFG_SEQ_CHAT));
	assert_int_not_equal(one_key(5, NO, 1, CFG_SEQ_CHAT_THREAD),
	    one_key(5, NO, 2, CFG_SEQ_CHAT_THREAD));
	assert_int_not_equal(one_key(5, NO, 1, CFG_SEQ_CHAT_THREAD),
	    one_key(6, NO, 1, CFG_SEQ_CHAT_THREAD));
	assert_int_not_equal(one_key(1, NO, 2, CFG_SEQ_CHAT_THREAD),
	    one_key(2, NO, 1, CFG_SEQ_CHAT_THREAD));
	/* Stable: the same update gives the same key. */
	assert_int_equal(chat5, one_key(5, 9, 3, CFG_SEQ_CHAT));
	assert_int_equal(one_key(NO, 9, NO, CFG_SEQ_USER),
	    one_key(-100, 9, 3, CFG_SEQ_USER));
}

/* No collisions among many nearby ids of all kinds (a sanity check of the mixer). */
static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void test_keys_spread(void **state)
{
	enum { N = 2000 };
	static uint64_t all[3 * N];
	size_t n = 0, i;
	int64_t v;

	for (v = -N / 2; v < N / 2; v++) {
		all[n++] = one_key(v, NO, NO, CFG_SEQ_CHAT);
		all[n++] = one_key(NO, v, NO, CFG_SEQ_USER);
		all[n++] = one_key(-1001234567890LL, NO, v, CFG_SEQ_CHAT_THREAD);
	}
	qsort(all, n, sizeof(all[0]), cmp_u64);
	for (i = 1; i < n; i++)
		assert_int_not_equal(all[i - 1], all[i]);
}

/* From JSON to keys: a topic message and a callback in the same topic share a key. */
static void test_extract_then_keys(void **state)
{
	static const char *msg = "{\"update_id\":1,\"message\":{\"message_id\":6,"
	    "\"message_thread_id\":77,\"is_topic_message\":true,\"from\":" USER(112)
	    ",\"chat\":" FORUM ",\"date\":1}}";
	static const char *cb = "{\"update_id\":2,\"callback_query\":{\"id\":\"c\","
	    "\"from\":" USER(9) ",\"message\":{\"message_id\":21,"
	    "\"message_thread_id\":77,\"chat\":" FORUM ",\"date\":1},"
	    "\"chat_instance\":\"ci\"}}";
	struct update_keys a, b;
	uint64_t ka[KEYS_MAX], kb[KEYS_MAX];
	json_t *j;

	assert_non_null(j = json_loads(msg, 0, NULL));
	assert_int_equal(keys_extract(j, &a), 0);
	json_decref(j);
	assert_non_null(j = json_loads(cb, 0, NULL));
	assert_int_equal(keys_extract(j, &b), 0);
	json_decref(j);

	assert_int_equal(keys_for(&a, CFG_SEQ_CHAT_THREAD, ka), 1);
	assert_int_equal(keys_for(&b, CFG_SEQ_CHAT_THREAD, kb), 1);
	assert_int_equal(ka[0], kb[0]);
	assert_int_equal(keys_for(&a, CFG_SEQ_USER, ka), 1);
	assert_int_equal(keys_for(&b, CFG_SEQ_USER, kb), 1);
	assert_int_not_equal(ka[0], kb[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_extract_table),
		cmocka_unit_test(test_extract_update_id),
		cmocka_unit_test(test_type_names),
		cmocka_unit_test(test_keys_for_table),
		cmocka_unit_test(test_keys_distinct),
		cmocka_unit_test(test_keys_spread),
		cmocka_unit_test(test_extract_then_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
