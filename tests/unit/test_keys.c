/*
 * Unit tests for common/keys.c, the one key table of master and worker
 * (every update type, both walkers, the worker's accessors), and
 * daemon/seqkeys.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "keys.h"
#include "seqkeys.h"
#include "tgrun.h"
#include "worker.h"

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
	{ "guest_message",
	  "{\"update_id\":34,\"guest_message\":{\"message_id\":40,\"from\":" USER(127)
	  ",\"chat\":" SUPERGROUP ",\"date\":1700000000,\"guest_query_id\":\"gq1\","
	  "\"text\":\"@bot hi\"}}",
	  0, UPD_GUEST_MESSAGE, GROUP_ID, 127, NO },
	{ "guest_message in topic",
	  "{\"update_id\":35,\"guest_message\":{\"message_id\":41,"
	  "\"message_thread_id\":77,\"from\":" USER(127) ",\"chat\":" FORUM
	  ",\"date\":1700000000,\"guest_query_id\":\"gq2\",\"text\":\"@bot\"}}",
	  0, UPD_GUEST_MESSAGE, GROUP_ID, 127, 77 },
	{ "managed_bot",
	  "{\"update_id\":36,\"managed_bot\":{\"user\":" USER(128) ",\"bot\":"
	  "{\"id\":987654321,\"is_bot\":true,\"first_name\":\"B\","
	  "\"username\":\"managed_bot\"}}}",
	  0, UPD_MANAGED_BOT, NO, 128, NO },
	{ "subscription",
	  "{\"update_id\":37,\"subscription\":{\"user\":" USER(129)
	  ",\"invoice_payload\":\"plan\",\"state\":\"canceled\"}}",
	  0, UPD_SUBSCRIPTION, NO, 129, NO },

	/* Shapes that are not quite right. */
	{ "type before update_id",
	  "{\"message\":{\"message_id\":1,\"from\":" USER(1) ",\"chat\":" PRIV(1)
	  ",\"date\":1},\"update_id\":40}",
	  0, UPD_MESSAGE, 1, 1, NO },
	{ "unknown field before the type",
	  "{\"update_id\":41,\"future_thing\":{\"chat\":{\"id\":5}},"
	  "\"message\":{\"message_id\":1,\"chat\":" PRIV(2) ",\"date\":1}}",
	  0, UPD_MESSAGE, 2, NO, NO },
	/* A type the table does not know: the generic rule. */
	{ "unknown type",
	  "{\"update_id\":42,\"future_update\":{\"chat\":{\"id\":5},\"from\":{\"id\":6}}}",
	  0, UPD_UNKNOWN, 5, 6, NO },
	{ "unknown type with user",
	  "{\"update_id\":42,\"future_update\":{\"user\":{\"id\":6},"
	  "\"message_thread_id\":3}}",
	  0, UPD_UNKNOWN, NO, 6, NO },
	{ "unknown type: from before user",
	  "{\"update_id\":42,\"future_update\":{\"user\":{\"id\":7},"
	  "\"from\":{\"id\":6}}}",
	  0, UPD_UNKNOWN, NO, 6, NO },
	{ "unknown type: user when from is no id",
	  "{\"update_id\":42,\"future_update\":{\"from\":{\"id\":\"6\"},"
	  "\"user\":{\"id\":7},\"chat\":{\"id\":8}}}",
	  0, UPD_UNKNOWN, 8, 7, NO },
	{ "unknown type not an object",
	  "{\"update_id\":42,\"future_update\":[{\"chat\":{\"id\":5}}]}",
	  0, UPD_UNKNOWN, NO, NO, NO },
	{ "empty and long keys are passed over",
	  "{\"update_id\":42,\"\":{\"chat\":{\"id\":5}},\"a_key_longer_than_any_"
	  "type_name_that_the_table_could_ever_hold_xyz\":{\"chat\":{\"id\":6}},"
	  "\"x\":{\"chat\":{\"id\":7}}}",
	  0, UPD_UNKNOWN, 7, NO, NO },
	{ "first unknown key names the type",
	  "{\"update_id\":42,\"a\":{\"chat\":{\"id\":5}},\"b\":{\"chat\":{\"id\":6}}}",
	  0, UPD_UNKNOWN, 5, NO, NO },
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

static void expect_keys(const struct extract_case *c, const char *view,
    const struct update_keys *k, int rc)
{
	if (rc != c->rc)
		fail_msg("%s (%s): rc %d, expected %d", c->name, view, rc, c->rc);
	if (k->type != c->type)
		fail_msg("%s (%s): type %s, expected %s", c->name, view,
		    keys_type_name(k->type), keys_type_name(c->type));
	if (k->has_chat != (c->chat != NO) || (k->has_chat && k->chat_id != c->chat))
		fail_msg("%s (%s): chat has=%d %lld", c->name, view, k->has_chat,
		    (long long)k->chat_id);
	if (k->has_user != (c->user != NO) || (k->has_user && k->user_id != c->user))
		fail_msg("%s (%s): user has=%d %lld", c->name, view, k->has_user,
		    (long long)k->user_id);
	if (k->has_thread != (c->thread != NO) ||
	    (k->has_thread && k->thread_id != c->thread))
		fail_msg("%s (%s): thread has=%d %lld", c->name, view, k->has_thread,
		    (long long)k->thread_id);
}

/*
 * What a handler sees of the same update: tgrun_update_type, tgrun_chat_id,
 * tgrun_user_id, and whether tgrun_reply finds a chat (outside a fiber it
 * then fails for that reason instead).
 */
static void worker_view(const struct extract_case *c, json_t *j,
    const struct update_keys *k)
{
	struct wupdate u;
	struct tgrun_ctx ctx;
	struct tgrun_error err;
	const char *type = c->type != UPD_UNKNOWN ? keys_type_name(c->type) :
	    k->name[0] ? k->name : "unknown";

	memset(&u, 0, sizeof(u));
	memset(&ctx, 0, sizeof(ctx));
	u.update = j;
	ctx.u = &u;
	wupdate_describe(&u);
	if (strcmp(tgrun_update_type(&ctx), type) != 0)
		fail_msg("%s (worker): type %s, expected %s", c->name,
		    tgrun_update_type(&ctx), type);
	if (tgrun_chat_id(&ctx) != (c->chat == NO ? 0 : c->chat))
		fail_msg("%s (worker): chat %lld", c->name,
		    (long long)tgrun_chat_id(&ctx));
	if (tgrun_user_id(&ctx) != (c->user == NO ? 0 : c->user))
		fail_msg("%s (worker): user %lld", c->name,
		    (long long)tgrun_user_id(&ctx));
	assert_null(tgrun_reply(NULL, j, "x", &err));
	if ((strcmp(err.description, "the update has no chat") != 0) !=
	    (c->chat != NO))
		fail_msg("%s (worker): tgrun_reply: %s", c->name, err.description);
}

/* The master's two walkers and the worker agree with the expected keys. */
static void check_one(const struct extract_case *c)
{
	struct update_keys k, raw;
	json_error_t jerr;
	json_t *j;
	int rc;

	j = json_loads(c->json, JSON_DECODE_ANY, &jerr);
	if (j == NULL)
		fail_msg("%s: bad test JSON: %s (column %d)", c->name, jerr.text,
		    jerr.column);
	memset(&k, 0xa5, sizeof(k));
	rc = keys_extract(j, &k);
	expect_keys(c, "jansson", &k, rc);
	memset(&raw, 0xa5, sizeof(raw));
	rc = keys_extract_raw(c->json, strlen(c->json), &raw);
	expect_keys(c, "raw", &raw, rc);
	if (strcmp(k.name, raw.name) != 0)
		fail_msg("%s: name \"%s\" and raw \"%s\"", c->name, k.name, raw.name);
	if (c->rc == 0)
		worker_view(c, j, &k);
	json_decref(j);
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

/* seqkeys_for: chat/user/thread ids (NO = absent), the CFG_SEQ bits, what comes out. */
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
	uint64_t out[SEQKEYS_MAX];

	assert_int_equal(seqkeys_for(&k, seq, out), 1);
	return out[0];
}

static void test_keys_for_table(void **state)
{
	size_t i;
	int j, n;

	for (i = 0; i < sizeof(for_cases) / sizeof(for_cases[0]); i++) {
		const struct for_case *c = &for_cases[i];
		struct update_keys k = mk(c->chat, c->user, c->thread);
		uint64_t out[SEQKEYS_MAX], want;

		n = seqkeys_for(&k, c->seq, out);
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
	uint64_t ka[SEQKEYS_MAX], kb[SEQKEYS_MAX];
	json_t *j;

	assert_non_null(j = json_loads(msg, 0, NULL));
	assert_int_equal(keys_extract(j, &a), 0);
	json_decref(j);
	assert_non_null(j = json_loads(cb, 0, NULL));
	assert_int_equal(keys_extract(j, &b), 0);
	json_decref(j);

	assert_int_equal(seqkeys_for(&a, CFG_SEQ_CHAT_THREAD, ka), 1);
	assert_int_equal(seqkeys_for(&b, CFG_SEQ_CHAT_THREAD, kb), 1);
	assert_int_equal(ka[0], kb[0]);
	assert_int_equal(seqkeys_for(&a, CFG_SEQ_USER, ka), 1);
	assert_int_equal(seqkeys_for(&b, CFG_SEQ_USER, kb), 1);
	assert_int_not_equal(ka[0], kb[0]);
}

/* The optional fields of the Bot API's Update object, Bot API 10.2. */
static const char *const update_fields[] = {
	"message", "edited_message", "channel_post", "edited_channel_post",
	"business_connection", "business_message", "edited_business_message",
	"deleted_business_messages", "guest_message", "message_reaction",
	"message_reaction_count", "inline_query", "chosen_inline_result",
	"callback_query", "shipping_query", "pre_checkout_query",
	"purchased_paid_media", "poll", "poll_answer", "my_chat_member",
	"chat_member", "chat_join_request", "chat_boost", "removed_chat_boost",
	"managed_bot", "subscription",
};

/* The table knows every field of Update, and nothing else. */
static void test_update_fields(void **state)
{
	size_t i, n = sizeof(update_fields) / sizeof(update_fields[0]);

	for (i = 0; i < n; i++)
		if (keys_type_from_name(update_fields[i]) == UPD_UNKNOWN)
			fail_msg("Update field %s is not in the key table",
			    update_fields[i]);
	assert_int_equal(UPD__COUNT - 1, n);
}

/* Every path of every rule is short and ends on an id; the generic rule. */
static void test_rules(void **state)
{
	const struct keys_rule *g = keys_rule(UPD_UNKNOWN);
	int t;

	assert_ptr_equal(keys_rule(UPD__COUNT), g);
	assert_string_equal(g->chat[0], "chat");
	assert_string_equal(g->chat[1], "id");
	assert_null(g->chat[2]);
	assert_string_equal(g->user[0], "from");
	assert_string_equal(g->user_alt[0], "user");
	assert_null(g->thread);
	for (t = 0; t < UPD__COUNT; t++) {
		const struct keys_rule *r = keys_rule((enum update_type)t);
		const char *const *paths[] = { r->chat, r->user, r->user_alt,
		    r->chat_alt, r->thread };
		size_t i, n;

		for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
			if (paths[i] == NULL)
				continue;
			for (n = 0; paths[i][n] != NULL; n++)
				;
			if (n == 0 || n > 4)
				fail_msg("%s: a path of %zu steps",
				    keys_type_name((enum update_type)t), n);
		}
	}
}

/* Run keys_extract_raw() (or keys_extract() with `dom`) with stderr captured; lines logged. */
static int logged_lines(const char *json, int dom)
{
	char path[] = "/tmp/tgrun-keystest-XXXXXX", buf[4096];
	int fd = mkstemp(path), saved = dup(2), lines = 0;
	struct update_keys k;
	ssize_t n, i;

	assert_true(fd >= 0);
	dup2(fd, 2);
	if (dom) {
		json_t *j = json_loads(json, 0, NULL);

		assert_non_null(j);
		assert_int_equal(keys_extract(j, &k), 0);
		json_decref(j);
	} else {
		assert_int_equal(keys_extract_raw(json, strlen(json), &k), 0);
	}
	dup2(saved, 2);
	close(saved);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	unlink(path);
	for (i = 0; i < n; i++)
		lines += buf[i] == '\n';
	if (lines > 0) {
		buf[n] = '\0';
		assert_non_null(strstr(buf, "[notice]"));
		assert_non_null(strstr(buf, k.name));
	}
	return lines;
}

/* An unknown type is logged once by the master's walker, never by the worker's. */
static void test_unknown_logged_once(void **state)
{
	static const char a[] = "{\"update_id\":1,\"brand_new\":{\"chat\":{\"id\":1}}}";
	static const char b[] = "{\"update_id\":2,\"newer_still\":{\"user\":{\"id\":2}}}";
	char buf[128];
	int i, total = 0;

	assert_int_equal(logged_lines(a, 1), 0);
	assert_int_equal(logged_lines(a, 0), 1);
	assert_int_equal(logged_lines(a, 0), 0);
	assert_int_equal(logged_lines(a, 1), 0);
	assert_int_equal(logged_lines(b, 0), 1);
	assert_int_equal(logged_lines(b, 0), 0);
	assert_int_equal(logged_lines("{\"update_id\":3,\"message\":{}}", 0), 0);
	/* A stream of made-up names: a bounded number of lines. */
	for (i = 0; i < 100; i++) {
		snprintf(buf, sizeof(buf), "{\"update_id\":%d,\"made_up_%d\":{}}",
		    i, i);
		total += logged_lines(buf, 0);
	}
	assert_true(total > 0 && total <= 16);
}

/* The path as README.md writes it: `a.b.c`. */
static void path_text(const char *const *path, char *buf, size_t size)
{
	size_t n = 0;

	n += (size_t)snprintf(buf + n, size - n, "`");
	for (; *path != NULL; path++)
		n += (size_t)snprintf(buf + n, size - n, "%s%s", path[0],
		    path[1] != NULL ? "." : "");
	snprintf(buf + n, size - n, "`");
}

/*
 * README.md lists the keys of every update type: a table row names the type
 * and each of its rule's paths. Run from the source tree (make unit).
 */
static void test_readme_lists_keys(void **state)
{
	FILE *f = fopen("README.md", "r");
	char line[1024], want[160], row[UPD__COUNT + 1][1024];
	int in = 0, t, found[UPD__COUNT + 1] = { 0 };

	if (f == NULL) {
		print_message("README.md not found (not run from the source tree)\n");
		skip();
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "### Keys of every update type", 29) == 0)
			in = 1;
		else if (in && line[0] == '#')
			break;
		if (!in || line[0] != '|')
			continue;
		for (t = 0; t <= UPD__COUNT; t++) {
			if (t == UPD__COUNT)
				snprintf(want, sizeof(want), "any other type");
			else
				snprintf(want, sizeof(want), "`%s`",
				    keys_type_name((enum update_type)t));
			if (t != UPD_UNKNOWN && strstr(line, want) != NULL) {
				found[t] = 1;
				snprintf(row[t], sizeof(row[t]), "%s", line);
			}
		}
	}
	fclose(f);
	assert_true(in);
	for (t = 1; t <= UPD__COUNT; t++) {
		const struct keys_rule *r = keys_rule(t == UPD__COUNT ? UPD_UNKNOWN :
		    (enum update_type)t);
		const char *const *paths[] = { r->chat, r->user, r->user_alt,
		    r->chat_alt, r->thread };
		const char *name = t == UPD__COUNT ? "any other type" :
		    keys_type_name((enum update_type)t);
		size_t i;

		if (!found[t])
			fail_msg("README.md has no row for %s", name);
		for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
			if (paths[i] == NULL)
				continue;
			path_text(paths[i], want, sizeof(want));
			if (strstr(row[t], want) == NULL)
				fail_msg("README.md: the row of %s lacks %s", name, want);
		}
	}
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
		cmocka_unit_test(test_update_fields),
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_unknown_logged_once),
		cmocka_unit_test(test_readme_lists_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
