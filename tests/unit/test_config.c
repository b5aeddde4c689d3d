/* Unit tests of daemon/config.c: every key, every kind of bad value, defaults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "units.h"
#include "keys.h"
#include "log.h"

/* The bot.conf files are written to a private directory that is the cwd. */
static char tmpdir[PATH_MAX];
static char oldcwd[PATH_MAX];

/* Lines 1-2 of most cases: the one required key. */
#define H "[workers]\nhandler = h.so\n"

enum ck { CK_NONE, CK_INT, CK_I64, CK_SIZE, CK_UNS, CK_U32, CK_STR, CK_FN, CK_RATE };

struct tcase {
	const char *name;
	const char *text;
	const char *err;	/* expected start of the error, NULL = loads */
	const char *absent;	/* must not appear in the error (the token) */
	enum ck ck;		/* for loading cases: one field to check */
	size_t off;
	long long num;
	const char *str;
	void (*fn)(const struct config *);
};

#define F(f) offsetof(struct config, f)
#define BAD(n, t, e) { n, t, e, NULL, CK_NONE, 0, 0, NULL, NULL }
#define BAD_SECRET(n, t, e, s) { n, t, e, s, CK_NONE, 0, 0, NULL, NULL }
#define OK_INT(n, t, f, v) { n, t, NULL, NULL, CK_INT, F(f), v, NULL, NULL }
#define OK_I64(n, t, f, v) { n, t, NULL, NULL, CK_I64, F(f), v, NULL, NULL }
#define OK_SIZE(n, t, f, v) { n, t, NULL, NULL, CK_SIZE, F(f), v, NULL, NULL }
#define OK_UNS(n, t, f, v) { n, t, NULL, NULL, CK_UNS, F(f), v, NULL, NULL }
#define OK_U32(n, t, f, v) { n, t, NULL, NULL, CK_U32, F(f), v, NULL, NULL }
#define OK_STR(n, t, f, v) { n, t, NULL, NULL, CK_STR, F(f), 0, v, NULL }
#define OK_FN(n, t, fn) { n, t, NULL, NULL, CK_FN, 0, 0, NULL, fn }
/* A struct cfg_rate: v per "s" or "m". */
#define OK_RATE(n, t, f, v, per) { n, t, NULL, NULL, CK_RATE, F(f), v, per, NULL }

#define B(t) (1u << (t))
#define ALL_UPDATES "message, edited_message, channel_post, edited_channel_post, " \
	"business_connection, business_message, edited_business_message, " \
	"deleted_business_messages, message_reaction, message_reaction_count, " \
	"inline_query, chosen_inline_result, callback_query, shipping_query, " \
	"pre_checkout_query, purchased_paid_media, poll, poll_answer, " \
	"my_chat_member, chat_member, chat_join_request, chat_boost, removed_chat_boost"
#define INT_NAN(sec, key, v, acc) \
	"bot.conf:4: [" sec "] " key ": \"" v "\" is not a number (accepted: " acc ")"
#define RANGE(sec, key, v, acc) \
	"bot.conf:4: [" sec "] " key ": \"" v "\" is out of range (accepted: " acc ")"
#define EMPTY(sec, key) "bot.conf:4: [" sec "] " key ": empty value (accepted: "
#define NOTACC(sec, key, v) "bot.conf:4: [" sec "] " key ": \"" v "\" is not accepted (accepted: "
#define NOTDUR(sec, key, v) "bot.conf:4: [" sec "] " key ": \"" v "\" is not a duration (accepted: "
#define NOTSIZE(sec, key, v) "bot.conf:4: [" sec "] " key ": \"" v "\" is not a size (accepted: "
#define NOTUPD(sec, key, v) "bot.conf:4: [" sec "] " key ": \"" v "\" is not an update type (accepted: "
#define DUR_ACC(lo) "a duration " lo "..1440m: a number with ms, s or m; bare = seconds"
#define NOTRATE(sec, key, v) "bot.conf:4: [" sec "] " key ": \"" v "\" is not a rate (accepted: "
#define RATE_ACC "a rate N/s or N/m (per second, per minute), N an integer 1..1000000"
#define UNKNOWN(sec, key, acc) "bot.conf:4: [" sec "] " key ": unknown key (accepted: " acc ")"

static void check_all_updates(const struct config *cfg);
static void check_api_url_default(const struct config *cfg);
static void check_handler_kv(const struct config *cfg);
static void check_handler_multiline(const struct config *cfg);
static void check_handler_empty(const struct config *cfg);
static void check_relative_handler(const struct config *cfg);
static void check_relative_journal(const struct config *cfg);
static void check_relative_control(const struct config *cfg);
static void check_control_default(const struct config *cfg);
static void check_metrics_off(const struct config *cfg);
static void check_relative_token_file(const struct config *cfg);
static void check_stack_rounded(const struct config *cfg);
static void check_worker_conc_div(const struct config *cfg);
static void check_worker_conc_min(const struct config *cfg);
static void check_worker_conc_auto(const struct config *cfg);
static void check_count_auto(const struct config *cfg);
static void check_token(const struct config *cfg);
static void check_repeated_section(const struct config *cfg);
static void check_comments(const struct config *cfg);
static void check_proxy_off(const struct config *cfg);
static void check_cluster_defaults(const struct config *cfg);
static void check_cluster_credentials(const struct config *cfg);

static const struct tcase cases[] = {
	/* [bot] */
	OK_STR("bot.name", H "[bot]\nname = my-bot_1.x\n", name, "my-bot_1.x"),
	BAD("bot.name slash", H "[bot]\nname = a/b\n", NOTACC("bot", "name", "a/b")),
	BAD("bot.name dot", H "[bot]\nname = .hidden\n", NOTACC("bot", "name", ".hidden")),
	BAD("bot.name long", H "[bot]\nname = "
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	    "bot.conf:4: [bot] name: \"aaaa"),
	BAD("bot.name empty", H "[bot]\nname =\n", EMPTY("bot", "name")),
	OK_STR("bot.token_file", H "[bot]\ntoken_file = /run/credentials/token\n",
	    token_file, "/run/credentials/token"),
	OK_FN("bot.token_file relative", H "[bot]\ntoken_file = tok\n",
	    check_relative_token_file),
	BAD("bot.token_file empty", H "[bot]\ntoken_file =\n", EMPTY("bot", "token_file")),
	OK_FN("bot.token", H "[bot]\ntoken = 123456:ABC-def_ghi\n", check_token),
	BAD_SECRET("bot.token slash", H "[bot]\ntoken = 123:SECRET/x\n",
	    "bot.conf:4: [bot] token: contains a blank, control or '/' character "
	    "(accepted: the bot token from @BotFather)", "SECRET"),
	BAD_SECRET("bot.token blank", H "[bot]\ntoken = 123:SECRET x\n",
	    "bot.conf:4: [bot] token: contains a blank", "SECRET"),
	BAD("bot.token empty", H "[bot]\ntoken =\n", EMPTY("bot", "token")),
	BAD_SECRET("bot.token and token_file", H "[bot]\ntoken = 1:SECRET\n"
	    "token_file = /t\n",
	    "bot.conf:4: [bot] token: set together with token_file (accepted: "
	    "one of token or token_file)", "SECRET"),
	BAD_SECRET("bot.token then bad key", H "[bot]\ntoken = 1:SECRET\n"
	    "[limits]\nconcurrency = 0\n",
	    "bot.conf:6: [limits] concurrency: \"0\" is out of range", "SECRET"),
	BAD_SECRET("bot.token duplicate", H "[bot]\ntoken = 1:SECRET\ntoken = 2:SECRET\n",
	    "bot.conf:5: [bot] token: duplicate key, first set on line 4", "SECRET"),
	BAD_SECRET("bot.token continued", H "[bot]\ntoken = 1:SECRET\n  MORESECRET\n",
	    "bot.conf:5: [bot] token: indented line continues the value", "SECRET"),
	OK_STR("bot.api_url", H "[bot]\napi_url = http://127.0.0.1:8081\n",
	    api_url, "http://127.0.0.1:8081"),
	OK_STR("bot.api_url trailing slashes", H "[bot]\napi_url = https://x.org/api///\n",
	    api_url, "https://x.org/api"),
	OK_FN("bot.api_url default", H, check_api_url_default),
	BAD("bot.api_url ftp", H "[bot]\napi_url = ftp://x.org\n",
	    NOTACC("bot", "api_url", "ftp://x.org") "a URL starting with http:// or https://)"),
	BAD("bot.api_url no host", H "[bot]\napi_url = https://\n",
	    NOTACC("bot", "api_url", "https://")),
	BAD("bot.api_url no scheme", H "[bot]\napi_url = api.telegram.org\n",
	    NOTACC("bot", "api_url", "api.telegram.org")),
	BAD("bot.api_url blank", H "[bot]\napi_url = http://a b\n",
	    NOTACC("bot", "api_url", "http://a b")),
	BAD("bot.api_url empty", H "[bot]\napi_url =\n", EMPTY("bot", "api_url")),
	BAD("bot unknown key", H "[bot]\nnam = x\n",
	    UNKNOWN("bot", "nam", "name, token_file, token, api_url")),

	/* [poll] */
	OK_I64("poll.timeout 0", H "[poll]\ntimeout = 0\n", poll_timeout_ms, 0),
	OK_I64("poll.timeout 50s", H "[poll]\ntimeout = 50s\n", poll_timeout_ms, 50000),
	OK_I64("poll.timeout bare", H "[poll]\ntimeout = 20\n", poll_timeout_ms, 20000),
	OK_I64("poll.timeout 2000ms", H "[poll]\ntimeout = 2000ms\n", poll_timeout_ms, 2000),
	BAD("poll.timeout nan", H "[poll]\ntimeout = abc\n", NOTDUR("poll", "timeout", "abc")
	    "whole seconds 0..50, e.g. 30 or 30s)"),
	BAD("poll.timeout unit", H "[poll]\ntimeout = 10x\n", NOTDUR("poll", "timeout", "10x")),
	BAD("poll.timeout high", H "[poll]\ntimeout = 51s\n",
	    RANGE("poll", "timeout", "51s", "whole seconds 0..50, e.g. 30 or 30s")),
	BAD("poll.timeout 1m", H "[poll]\ntimeout = 1m\n", RANGE("poll", "timeout", "1m",
	    "whole seconds 0..50, e.g. 30 or 30s")),
	BAD("poll.timeout negative", H "[poll]\ntimeout = -1s\n",
	    RANGE("poll", "timeout", "-1s", "whole seconds 0..50, e.g. 30 or 30s")),
	BAD("poll.timeout fraction", H "[poll]\ntimeout = 1500ms\n",
	    "bot.conf:4: [poll] timeout: \"1500ms\" is not a whole number of seconds"),
	BAD("poll.timeout empty", H "[poll]\ntimeout =\n", EMPTY("poll", "timeout")),
	OK_INT("poll.limit 1", H "[poll]\nlimit = 1\n", poll_limit, 1),
	OK_INT("poll.limit 100", H "[poll]\nlimit = 100\n", poll_limit, 100),
	BAD("poll.limit nan", H "[poll]\nlimit = abc\n",
	    INT_NAN("poll", "limit", "abc", "an integer 1..100")),
	BAD("poll.limit junk", H "[poll]\nlimit = 5x\n", INT_NAN("poll", "limit", "5x", "an integer 1..100")),
	BAD("poll.limit plus", H "[poll]\nlimit = +5\n", INT_NAN("poll", "limit", "+5", "an integer 1..100")),
	BAD("poll.limit hex", H "[poll]\nlimit = 0x10\n", INT_NAN("poll", "limit", "0x10", "an integer 1..100")),
	BAD("poll.limit exp", H "[poll]\nlimit = 1e2\n", INT_NAN("poll", "limit", "1e2", "an integer 1..100")),
	BAD("poll.limit inner blank", H "[poll]\nlimit = 1 0\n", INT_NAN("poll", "limit", "1 0", "an integer 1..100")),
	BAD("poll.limit low", H "[poll]\nlimit = 0\n", RANGE("poll", "limit", "0", "an integer 1..100")),
	BAD("poll.limit high", H "[poll]\nlimit = 101\n", RANGE("poll", "limit", "101", "an integer 1..100")),
	BAD("poll.limit negative", H "[poll]\nlimit = -1\n", RANGE("poll", "limit", "-1", "an integer 1..100")),
	BAD("poll.limit overflow", H "[poll]\nlimit = 99999999999999999999999\n",
	    RANGE("poll", "limit", "99999999999999999999999", "an integer 1..100")),
	BAD("poll.limit empty", H "[poll]\nlimit =\n", EMPTY("poll", "limit") "an integer 1..100)"),
	OK_STR("poll.allowed_updates", H "[poll]\nallowed_updates = message, callback_query\n",
	    allowed_updates, "[\"message\",\"callback_query\"]"),
	OK_STR("poll.allowed_updates no spaces", H "[poll]\nallowed_updates=poll,chat_member\n",
	    allowed_updates, "[\"poll\",\"chat_member\"]"),
	OK_STR("poll.allowed_updates repeated", H "[poll]\nallowed_updates = message,message\n",
	    allowed_updates, "[\"message\"]"),
	OK_STR("poll.allowed_updates empty", H "[poll]\nallowed_updates =\n",
	    allowed_updates, "[]"),
	OK_FN("poll.allowed_updates all, continued", H "[poll]\nallowed_updates = "
	    "message, edited_message, channel_post, edited_channel_post,\n"
	    "  business_connection, business_message, edited_business_message\n"
	    "\tdeleted_business_messages, message_reaction, message_reaction_count,\n"
	    "  inline_query, chosen_inline_result, callback_query, shipping_query,\n"
	    "  pre_checkout_query, purchased_paid_media, poll, poll_answer,\n"
	    "  my_chat_member, chat_member, chat_join_request, chat_boost,\n"
	    "  removed_chat_boost\n", check_all_updates),
	BAD("poll.allowed_updates bad", H "[poll]\nallowed_updates = message, messages\n",
	    NOTUPD("poll", "allowed_updates", "messages") "message, edited_message"),
	BAD("poll.allowed_updates continued bad", H "[poll]\nallowed_updates = message,\n"
	    "  callback_querry\n",
	    "bot.conf:5: [poll] allowed_updates: \"callback_querry\" is not an update type"),
	BAD("poll.allowed_updates none", H "[poll]\nallowed_updates = none\n",
	    NOTUPD("poll", "allowed_updates", "none")),
	BAD("poll.allowed_updates empty item", H "[poll]\nallowed_updates = message,,poll\n",
	    "bot.conf:4: [poll] allowed_updates: empty list item in \"message,,poll\""),
	OK_STR("poll.allowed_updates trailing comma", H "[poll]\nallowed_updates = message,\n",
	    allowed_updates, "[\"message\"]"),
	BAD("poll.allowed_updates only comma", H "[poll]\nallowed_updates = ,\n",
	    "bot.conf:4: [poll] allowed_updates: empty list item in \",\""),
	BAD("poll.allowed_updates leading comma", H "[poll]\nallowed_updates = ,message\n",
	    "bot.conf:4: [poll] allowed_updates: empty list item in \",message\""),
	BAD("poll.allowed_updates two trailing commas", H "[poll]\nallowed_updates = message,,\n",
	    "bot.conf:4: [poll] allowed_updates: empty list item"),
	OK_INT("poll.delete_webhook yes", H "[poll]\ndelete_webhook = yes\n", delete_webhook, 1),
	OK_INT("poll.delete_webhook true", H "[poll]\ndelete_webhook = true\n", delete_webhook, 1),
	OK_INT("poll.delete_webhook on", H "[poll]\ndelete_webhook = on\n", delete_webhook, 1),
	OK_INT("poll.delete_webhook 1", H "[poll]\ndelete_webhook = 1\n", delete_webhook, 1),
	OK_INT("poll.delete_webhook no", H "[poll]\ndelete_webhook = no\n", delete_webhook, 0),
	OK_INT("poll.delete_webhook off", H "[poll]\ndelete_webhook = off\n", delete_webhook, 0),
	BAD("poll.delete_webhook maybe", H "[poll]\ndelete_webhook = maybe\n",
	    NOTACC("poll", "delete_webhook", "maybe") "yes, no, true, false, on, off, 1, 0)"),
	BAD("poll.delete_webhook YES", H "[poll]\ndelete_webhook = YES\n",
	    NOTACC("poll", "delete_webhook", "YES")),
	BAD("poll.delete_webhook empty", H "[poll]\ndelete_webhook =\n",
	    EMPTY("poll", "delete_webhook")),
	BAD("poll unknown key", H "[poll]\ntimout = 5\n",
	    UNKNOWN("poll", "timout", "timeout, limit, allowed_updates, delete_webhook")),

	/* [workers] */
	OK_FN("workers.count auto", H "count = auto\n", check_count_auto),
	OK_INT("workers.count 1", H "count = 1\n", worker_count, 1),
	OK_INT("workers.count 256", H "count = 256\n", worker_count, 256),
	BAD("workers.count 0", "[workers]\nhandler = h.so\ncount = 0\n",
	    "bot.conf:3: [workers] count: \"0\" is out of range (accepted: auto or an integer 1..256)"),
	BAD("workers.count 257", H "count = 257\n", "bot.conf:3: [workers] count: \"257\" is out of range"),
	BAD("workers.count nan", H "count = many\n", "bot.conf:3: [workers] count: \"many\" is not a number"),
	BAD("workers.count empty", H "count =\n", "bot.conf:3: [workers] count: empty value"),
	BAD("workers.handler missing", "[workers]\ncount = 2\n",
	    "bot.conf: [workers] handler: missing (accepted: path of the handler .so)"),
	BAD("workers.handler missing, empty file", "", "bot.conf: [workers] handler: missing"),
	BAD("workers.handler nonexistent", "[poll]\nlimit = 5\n[workers]\nhandler = /nonexistent/y.so\n",
	    "bot.conf:4: [workers] handler: /nonexistent/y.so: No such file or directory"),
	BAD("workers.handler relative nonexistent", "[workers]\nhandler = nope.so\n",
	    "bot.conf:2: [workers] handler: nope.so: No such file or directory"),
	BAD("workers.handler directory", "[workers]\nhandler = /tmp\n",
	    "bot.conf:2: [workers] handler: /tmp: not a regular file (accepted: path of the handler .so)"),
	BAD("workers.handler empty", "[workers]\nhandler =\n", "bot.conf:2: [workers] handler: empty value"),
	OK_FN("workers.handler relative", "[workers]\nhandler = h.so\n", check_relative_handler),
	OK_FN("workers.handler dot-relative", "[workers]\nhandler = ./h.so\n", check_relative_handler),
	OK_SIZE("workers.stack_size 16k", H "stack_size = 16k\n", stack_size, 16384),
	OK_SIZE("workers.stack_size 64m", H "stack_size = 64m\n", stack_size, 64 << 20),
	OK_FN("workers.stack_size rounded", H "stack_size = 100000\n", check_stack_rounded),
	BAD("workers.stack_size low", H "stack_size = 15k\n",
	    "bot.conf:3: [workers] stack_size: \"15k\" is out of range (accepted: a size 16k..64m: "
	    "a number with k or m; bare = bytes)"),
	BAD("workers.stack_size high", H "stack_size = 65m\n", "bot.conf:3: [workers] stack_size: \"65m\" is out of range"),
	BAD("workers.stack_size unit", H "stack_size = 1g\n", "bot.conf:3: [workers] stack_size: \"1g\" is not a size"),
	BAD("workers.stack_size upper unit", H "stack_size = 256K\n", "bot.conf:3: [workers] stack_size: \"256K\" is not a size"),
	BAD("workers.stack_size nan", H "stack_size = big\n", "bot.conf:3: [workers] stack_size: \"big\" is not a size"),
	BAD("workers.stack_size negative", H "stack_size = -1k\n", "bot.conf:3: [workers] stack_size: \"-1k\" is out of range"),
	BAD("workers.stack_size overflow", H "stack_size = 99999999999999999999k\n",
	    "bot.conf:3: [workers] stack_size: \"99999999999999999999k\" is out of range"),
	BAD("workers.stack_size empty", H "stack_size =\n", "bot.conf:3: [workers] stack_size: empty value"),
	OK_INT("workers.max_updates 0", H "max_updates = 0\n", max_updates, 0),
	OK_INT("workers.max_updates 1000", H "max_updates = 1000\n", max_updates, 1000),
	BAD("workers.max_updates negative", H "max_updates = -1\n",
	    "bot.conf:3: [workers] max_updates: \"-1\" is out of range (accepted: an integer 0..2147483647)"),
	BAD("workers.max_updates high", H "max_updates = 2147483648\n",
	    "bot.conf:3: [workers] max_updates: \"2147483648\" is out of range"),
	BAD("workers.max_updates nan", H "max_updates = x\n", "bot.conf:3: [workers] max_updates: \"x\" is not a number"),
	BAD("workers unknown key", H "stack = 1\n",
	    "bot.conf:3: [workers] stack: unknown key (accepted: count, handler, stack_size, max_updates)"),

	/* [order] */
	OK_UNS("order.sequentialize chat", H "[order]\nsequentialize = chat\n", sequentialize, CFG_SEQ_CHAT),
	OK_UNS("order.sequentialize user,chat", H "[order]\nsequentialize = user, chat\n",
	    sequentialize, CFG_SEQ_CHAT | CFG_SEQ_USER),
	OK_UNS("order.sequentialize chat_thread", H "[order]\nsequentialize = chat_thread\n",
	    sequentialize, CFG_SEQ_CHAT_THREAD),
	OK_UNS("order.sequentialize all", H "[order]\nsequentialize = chat,user,chat_thread\n",
	    sequentialize, CFG_SEQ_CHAT | CFG_SEQ_USER | CFG_SEQ_CHAT_THREAD),
	OK_UNS("order.sequentialize none", H "[order]\nsequentialize = none\n", sequentialize, CFG_SEQ_NONE),
	BAD("order.sequentialize chats", H "[order]\nsequentialize = chats\n",
	    "bot.conf:4: [order] sequentialize: \"chats\" is not accepted (accepted: chat, user, chat_thread, none)"),
	BAD("order.sequentialize none+chat", H "[order]\nsequentialize = none, chat\n",
	    "bot.conf:4: [order] sequentialize: \"none\" must stand alone (accepted: chat, user, chat_thread, none)"),
	BAD("order.sequentialize empty item", H "[order]\nsequentialize = chat,,user\n",
	    "bot.conf:4: [order] sequentialize: empty list item in \"chat,,user\""),
	BAD("order.sequentialize empty", H "[order]\nsequentialize =\n", EMPTY("order", "sequentialize")),
	OK_U32("order.bypass", H "[order]\nbypass = callback_query, inline_query\n",
	    bypass, B(UPD_CALLBACK_QUERY) | B(UPD_INLINE_QUERY)),
	OK_U32("order.bypass continued", H "[order]\nbypass = callback_query,\n  poll\n",
	    bypass, B(UPD_CALLBACK_QUERY) | B(UPD_POLL)),
	OK_U32("order.bypass none", H "[order]\nbypass = none\n", bypass, 0),
	BAD("order.bypass bad", H "[order]\nbypass = callback\n",
	    NOTUPD("order", "bypass", "callback") "none, message, edited_message"),
	BAD("order.bypass none+poll", H "[order]\nbypass = none, poll\n",
	    "bot.conf:4: [order] bypass: \"none\" must stand alone"),
	BAD("order.bypass empty", H "[order]\nbypass =\n", EMPTY("order", "bypass")),
	BAD("order unknown key", H "[order]\nsequentialise = chat\n",
	    UNKNOWN("order", "sequentialise", "sequentialize, bypass")),

	/* [limits] */
	OK_INT("limits.concurrency 1", H "[limits]\nconcurrency = 1\n", concurrency, 1),
	OK_INT("limits.concurrency 100000", H "[limits]\nconcurrency = 100000\n", concurrency, 100000),
	BAD("limits.concurrency nan", H "[limits]\nconcurrency = abc\n",
	    INT_NAN("limits", "concurrency", "abc", "an integer 1..100000")),
	BAD("limits.concurrency low", H "[limits]\nconcurrency = 0\n",
	    RANGE("limits", "concurrency", "0", "an integer 1..100000")),
	BAD("limits.concurrency high", H "[limits]\nconcurrency = 100001\n",
	    RANGE("limits", "concurrency", "100001", "an integer 1..100000")),
	BAD("limits.concurrency empty", H "[limits]\nconcurrency =\n", EMPTY("limits", "concurrency")),
	OK_INT("limits.worker_concurrency 7", H "[limits]\nworker_concurrency = 7\n", worker_concurrency, 7),
	OK_FN("limits.worker_concurrency auto", H "[limits]\nworker_concurrency = auto\n",
	    check_worker_conc_auto),
	OK_FN("limits.worker_concurrency derived", H "count = 4\n[limits]\nconcurrency = 10\n",
	    check_worker_conc_div),
	OK_FN("limits.worker_concurrency at least 1", H "count = 8\n[limits]\nconcurrency = 5\n",
	    check_worker_conc_min),
	BAD("limits.worker_concurrency low", H "[limits]\nworker_concurrency = 0\n",
	    RANGE("limits", "worker_concurrency", "0", "auto or an integer 1..100000")),
	BAD("limits.worker_concurrency high", H "[limits]\nworker_concurrency = 100001\n",
	    RANGE("limits", "worker_concurrency", "100001", "auto or an integer 1..100000")),
	BAD("limits.worker_concurrency nan", H "[limits]\nworker_concurrency = x\n",
	    INT_NAN("limits", "worker_concurrency", "x", "auto or an integer 1..100000")),
	OK_INT("limits.max_pending 1", H "[limits]\nmax_pending = 1\n", max_pending, 1),
	OK_INT("limits.max_pending below concurrency", H "[limits]\nconcurrency = 500\nmax_pending = 10\n",
	    max_pending, 10),
	BAD("limits.max_pending low", H "[limits]\nmax_pending = 0\n",
	    RANGE("limits", "max_pending", "0", "an integer 1..2147483647")),
	BAD("limits.max_pending nan", H "[limits]\nmax_pending = lots\n",
	    INT_NAN("limits", "max_pending", "lots", "an integer 1..2147483647")),
	BAD("limits.max_pending empty", H "[limits]\nmax_pending =\n", EMPTY("limits", "max_pending")),
	OK_I64("limits.update_timeout ms", H "[limits]\nupdate_timeout = 250ms\n", update_timeout_ms, 250),
	OK_I64("limits.update_timeout m", H "[limits]\nupdate_timeout = 5m\n", update_timeout_ms, 300000),
	OK_I64("limits.update_timeout bare", H "[limits]\nupdate_timeout = 2\n", update_timeout_ms, 2000),
	BAD("limits.update_timeout 0", H "[limits]\nupdate_timeout = 0\n",
	    RANGE("limits", "update_timeout", "0", DUR_ACC("1ms"))),
	BAD("limits.update_timeout high", H "[limits]\nupdate_timeout = 1441m\n",
	    RANGE("limits", "update_timeout", "1441m", DUR_ACC("1ms"))),
	BAD("limits.update_timeout unit", H "[limits]\nupdate_timeout = 1d\n",
	    NOTDUR("limits", "update_timeout", "1d")),
	BAD("limits.update_timeout space", H "[limits]\nupdate_timeout = 1 s\n",
	    NOTDUR("limits", "update_timeout", "1 s")),
	BAD("limits.update_timeout fraction", H "[limits]\nupdate_timeout = 1.5s\n",
	    NOTDUR("limits", "update_timeout", "1.5s")),
	BAD("limits.update_timeout empty", H "[limits]\nupdate_timeout =\n", EMPTY("limits", "update_timeout")),
	OK_I64("limits.shutdown_timeout 0", H "[limits]\nshutdown_timeout = 0\n", shutdown_timeout_ms, 0),
	OK_I64("limits.shutdown_timeout 90s", H "[limits]\nshutdown_timeout = 90s\n", shutdown_timeout_ms, 90000),
	BAD("limits.shutdown_timeout negative", H "[limits]\nshutdown_timeout = -5\n",
	    RANGE("limits", "shutdown_timeout", "-5", DUR_ACC("0s"))),
	BAD("limits.shutdown_timeout nan", H "[limits]\nshutdown_timeout = soon\n",
	    NOTDUR("limits", "shutdown_timeout", "soon")),
	OK_INT("limits.max_attempts 1", H "[limits]\nmax_attempts = 1\n", max_attempts, 1),
	OK_INT("limits.max_attempts 100", H "[limits]\nmax_attempts = 100\n", max_attempts, 100),
	BAD("limits.max_attempts low", H "[limits]\nmax_attempts = 0\n",
	    RANGE("limits", "max_attempts", "0", "an integer 1..100")),
	BAD("limits.max_attempts high", H "[limits]\nmax_attempts = 101\n",
	    RANGE("limits", "max_attempts", "101", "an integer 1..100")),
	OK_I64("limits.kill_grace 100ms", H "[limits]\nkill_grace = 100ms\n", kill_grace_ms, 100),
	OK_I64("limits.kill_grace 0", H "[limits]\nkill_grace = 0\n", kill_grace_ms, 0),
	BAD("limits.kill_grace nan", H "[limits]\nkill_grace = abc\n", NOTDUR("limits", "kill_grace", "abc")),
	OK_I64("limits.heartbeat_timeout", H "[limits]\nheartbeat_timeout = 1s\n", heartbeat_timeout_ms, 1000),
	BAD("limits.heartbeat_timeout 0", H "[limits]\nheartbeat_timeout = 0s\n",
	    RANGE("limits", "heartbeat_timeout", "0s", DUR_ACC("1ms"))),
	BAD("limits unknown key", H "[limits]\nconcurency = 5\n",
	    UNKNOWN("limits", "concurency", "concurrency, worker_concurrency, max_pending, "
	    "update_timeout, shutdown_timeout, max_attempts, kill_grace, heartbeat_timeout")),

	/* [journal] */
	OK_STR("journal.path", H "[journal]\npath = /var/lib/x/j.db\n", journal_path, "/var/lib/x/j.db"),
	OK_FN("journal.path relative", H "[journal]\npath = j.db\n", check_relative_journal),
	BAD("journal.path empty", H "[journal]\npath =\n", EMPTY("journal", "path")),
	OK_INT("journal.enabled no", H "[journal]\nenabled = no\n", journal_enabled, 0),
	OK_INT("journal.enabled true", H "[journal]\nenabled = true\n", journal_enabled, 1),
	BAD("journal.enabled nope", H "[journal]\nenabled = nope\n", NOTACC("journal", "enabled", "nope")),
	OK_INT("journal.sync off", H "[journal]\nsync = off\n", journal_sync, CFG_SYNC_OFF),
	OK_INT("journal.sync normal", H "[journal]\nsync = normal\n", journal_sync, CFG_SYNC_NORMAL),
	OK_INT("journal.sync full", H "[journal]\nsync = full\n", journal_sync, CFG_SYNC_FULL),
	BAD("journal.sync fast", H "[journal]\nsync = fast\n",
	    NOTACC("journal", "sync", "fast") "off, normal, full)"),
	BAD("journal.sync empty", H "[journal]\nsync =\n", EMPTY("journal", "sync")),
	BAD("journal unknown key", H "[journal]\nfile = x\n", UNKNOWN("journal", "file", "path, enabled, sync")),

	/* [control] */
	OK_STR("control.socket", H "[control]\nsocket = /run/tgrun/b/c.sock\n",
	    control_socket, "/run/tgrun/b/c.sock"),
	OK_FN("control.socket relative", H "[control]\nsocket = c.sock\n",
	    check_relative_control),
	OK_FN("control.socket default", H, check_control_default),
	BAD("control.socket empty", H "[control]\nsocket =\n", EMPTY("control", "socket")),
	BAD("control.socket too long", H "[control]\nsocket = /"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	    "bot.conf:4: [control] socket: /aaaa"),
	OK_INT("control.enabled no", H "[control]\nenabled = no\n", control_enabled, 0),
	OK_INT("control.enabled default", H, control_enabled, 1),
	BAD("control.enabled maybe", H "[control]\nenabled = maybe\n",
	    NOTACC("control", "enabled", "maybe")),
	BAD("control unknown key", H "[control]\npath = x\n",
	    UNKNOWN("control", "path", "socket, enabled")),

	/* [metrics] */
	OK_STR("metrics.listen v4", H "[metrics]\nlisten = 127.0.0.1:9464\n",
	    metrics_listen, "127.0.0.1:9464"),
	OK_STR("metrics.listen v6", H "[metrics]\nlisten = [::1]:9464\n",
	    metrics_listen, "[::1]:9464"),
	OK_STR("metrics.listen port 0", H "[metrics]\nlisten = 127.0.0.1:0\n",
	    metrics_listen, "127.0.0.1:0"),
	OK_STR("metrics.listen localhost", H "[metrics]\nlisten = localhost:65535\n",
	    metrics_listen, "localhost:65535"),
	OK_STR("metrics.listen any address", H "[metrics]\nlisten = 0.0.0.0:9464\n",
	    metrics_listen, "0.0.0.0:9464"),
	OK_FN("metrics.listen off", H "[metrics]\nlisten = off\n", check_metrics_off),
	OK_FN("metrics.listen default", H, check_metrics_off),
	BAD("metrics.listen no port", H "[metrics]\nlisten = 127.0.0.1\n",
	    NOTACC("metrics", "listen", "127.0.0.1") "off, or ADDRESS:PORT"),
	BAD("metrics.listen port too big", H "[metrics]\nlisten = 127.0.0.1:65536\n",
	    NOTACC("metrics", "listen", "127.0.0.1:65536")),
	BAD("metrics.listen negative port", H "[metrics]\nlisten = 127.0.0.1:-1\n",
	    NOTACC("metrics", "listen", "127.0.0.1:-1")),
	BAD("metrics.listen empty port", H "[metrics]\nlisten = 127.0.0.1:\n",
	    NOTACC("metrics", "listen", "127.0.0.1:")),
	BAD("metrics.listen hostname", H "[metrics]\nlisten = example.org:80\n",
	    NOTACC("metrics", "listen", "example.org:80")),
	BAD("metrics.listen bare v6", H "[metrics]\nlisten = ::1:9464\n",
	    NOTACC("metrics", "listen", "::1:9464")),
	BAD("metrics.listen bad v6", H "[metrics]\nlisten = [::g]:9464\n",
	    NOTACC("metrics", "listen", "[::g]:9464")),
	BAD("metrics.listen unclosed", H "[metrics]\nlisten = [::1:9464\n",
	    NOTACC("metrics", "listen", "[::1:9464")),
	BAD("metrics.listen empty", H "[metrics]\nlisten =\n", EMPTY("metrics", "listen")),

	/* [api] */
	OK_I64("api.timeout", H "[api]\ntimeout = 10s\n", api_timeout_ms, 10000),
	BAD("api.timeout 0", H "[api]\ntimeout = 0\n", RANGE("api", "timeout", "0", DUR_ACC("1ms"))),
	BAD("api.timeout nan", H "[api]\ntimeout = x\n", NOTDUR("api", "timeout", "x")),
	OK_INT("api.retries 0", H "[api]\nretries = 0\n", api_retries, 0),
	OK_INT("api.retries 20", H "[api]\nretries = 20\n", api_retries, 20),
	BAD("api.retries high", H "[api]\nretries = 21\n", RANGE("api", "retries", "21", "an integer 0..20")),
	BAD("api.retries negative", H "[api]\nretries = -1\n", RANGE("api", "retries", "-1", "an integer 0..20")),
	BAD("api.retries nan", H "[api]\nretries = few\n", INT_NAN("api", "retries", "few", "an integer 0..20")),
	OK_I64("api.retry_after_max", H "[api]\nretry_after_max = 0\n", api_retry_after_max_ms, 0),
	OK_I64("api.retry_after_max 2m", H "[api]\nretry_after_max = 2m\n", api_retry_after_max_ms, 120000),
	BAD("api.retry_after_max nan", H "[api]\nretry_after_max = x\n", NOTDUR("api", "retry_after_max", "x")),
	BAD("api.retry_after_max empty", H "[api]\nretry_after_max =\n", EMPTY("api", "retry_after_max")),
	OK_INT("api.retry_ambiguous default", H, api_retry_ambiguous, 0),
	OK_INT("api.retry_ambiguous yes", H "[api]\nretry_ambiguous = yes\n", api_retry_ambiguous, 1),
	BAD("api.retry_ambiguous bad", H "[api]\nretry_ambiguous = twice\n",
	    NOTACC("api", "retry_ambiguous", "twice")),
	OK_INT("api.http_version default", H, api_http_version, 0),
	OK_INT("api.http_version auto", H "[api]\nhttp_version = auto\n", api_http_version, 0),
	OK_INT("api.http_version 1.1", H "[api]\nhttp_version = 1.1\n", api_http_version, 1),
	OK_INT("api.http_version 2", H "[api]\nhttp_version = 2\n", api_http_version, 2),
	BAD("api.http_version 3", H "[api]\nhttp_version = 3\n",
	    NOTACC("api", "http_version", "3") "auto, 1.1, 2)"),
	BAD("api.http_version 1", H "[api]\nhttp_version = 1\n", NOTACC("api", "http_version", "1")),
	BAD("api.ca_file missing", H "[api]\nca_file = /nonexistent/ca.pem\n",
	    "bot.conf:4: [api] ca_file: /nonexistent/ca.pem: No such file or directory"),
	BAD("api.ca_file directory", H "[api]\nca_file = /tmp\n",
	    "bot.conf:4: [api] ca_file: /tmp: not a regular file (accepted: path of a PEM file"),
	OK_STR("api.ca_path", H "[api]\nca_path = /tmp\n", api_ca_path, "/tmp"),
	BAD("api.ca_path a file", H "[api]\nca_path = h.so\n",
	    "bot.conf:4: [api] ca_path: h.so: not a directory (accepted: path of a directory"),
	OK_STR("api.proxy socks5h", H "[api]\nproxy = socks5h://u:p@127.0.0.1:1080\n",
	    api_proxy, "socks5h://u:p@127.0.0.1:1080"),
	OK_STR("api.proxy http", H "[api]\nproxy = http://proxy.lan:3128\n",
	    api_proxy, "http://proxy.lan:3128"),
	OK_STR("api.proxy https", H "[api]\nproxy = https://proxy.lan\n", api_proxy,
	    "https://proxy.lan"),
	OK_STR("api.proxy socks5", H "[api]\nproxy = socks5://127.0.0.1:1080\n", api_proxy,
	    "socks5://127.0.0.1:1080"),
	OK_FN("api.proxy off", H "[api]\nproxy = off\n", check_proxy_off),
	BAD_SECRET("api.proxy bad scheme", H "[api]\nproxy = ftp://u:SECRET@h:21\n",
	    "bot.conf:4: [api] proxy: the scheme is not accepted (accepted: a URL http://", "SECRET"),
	BAD_SECRET("api.proxy blank", H "[api]\nproxy = http://u:SEC RET@h:21\n",
	    "bot.conf:4: [api] proxy: contains a blank", "SEC"),
	BAD_SECRET("api.proxy no host", H "[api]\nproxy = socks5h://u:SECRET@\n",
	    "bot.conf:4: [api] proxy: no host", "SECRET"),
	BAD("api unknown key", H "[api]\nretry = 1\n", UNKNOWN("api", "retry",
	    "timeout, retries, retry_after_max, retry_ambiguous, http_version, ca_file, "
	    "ca_path, proxy")),

	/* [throttle] */
	OK_INT("throttle.enabled yes", H "[throttle]\nenabled = yes\n", throttle_enabled, 1),
	OK_INT("throttle.enabled off", H "[throttle]\nenabled = off\n", throttle_enabled, 0),
	BAD("throttle.enabled maybe", H "[throttle]\nenabled = maybe\n",
	    NOTACC("throttle", "enabled", "maybe") "yes, no, true, false, on, off, 1, 0)"),
	BAD("throttle.enabled empty", H "[throttle]\nenabled =\n", EMPTY("throttle", "enabled")),
	OK_RATE("throttle.global 30/s", H "[throttle]\nglobal = 30/s\n", throttle_global, 30, "s"),
	OK_RATE("throttle.global 1000/s", H "[throttle]\nglobal = 1000/s\n", throttle_global, 1000, "s"),
	OK_RATE("throttle.global per minute", H "[throttle]\nglobal = 600/m\n", throttle_global, 600, "m"),
	OK_RATE("throttle.chat 1/s", H "[throttle]\nchat = 1/s\n", throttle_chat, 1, "s"),
	OK_RATE("throttle.chat 40/s", H "[throttle]\nchat = 40/s\n", throttle_chat, 40, "s"),
	OK_RATE("throttle.chat max", H "[throttle]\nchat = 1000000/s\n", throttle_chat, 1000000, "s"),
	OK_RATE("throttle.group 20/m", H "[throttle]\ngroup = 20/m\n", throttle_group, 20, "m"),
	OK_RATE("throttle.group per second", H "[throttle]\ngroup = 5/s\n", throttle_group, 5, "s"),
	OK_RATE("throttle.group inline comment", H "[throttle]\ngroup = 60/m ; scaled\n",
	    throttle_group, 60, "m"),
	BAD("throttle.global 0/s", H "[throttle]\nglobal = 0/s\n",
	    RANGE("throttle", "global", "0/s", RATE_ACC)),
	BAD("throttle.chat too many", H "[throttle]\nchat = 1000001/s\n",
	    RANGE("throttle", "chat", "1000001/s", RATE_ACC)),
	BAD("throttle.chat negative", H "[throttle]\nchat = -1/s\n",
	    RANGE("throttle", "chat", "-1/s", RATE_ACC)),
	BAD("throttle.chat overflow", H "[throttle]\nchat = 99999999999999999999999/s\n",
	    RANGE("throttle", "chat", "99999999999999999999999/s", RATE_ACC)),
	BAD("throttle.chat bare number", H "[throttle]\nchat = 30\n",
	    NOTRATE("throttle", "chat", "30") RATE_ACC ")"),
	BAD("throttle.chat per hour", H "[throttle]\nchat = 30/h\n", NOTRATE("throttle", "chat", "30/h")),
	BAD("throttle.chat unit spelled out", H "[throttle]\nchat = 30/sec\n",
	    NOTRATE("throttle", "chat", "30/sec")),
	BAD("throttle.chat upper unit", H "[throttle]\nchat = 30/S\n", NOTRATE("throttle", "chat", "30/S")),
	BAD("throttle.chat fraction", H "[throttle]\nchat = 0.5/s\n", NOTRATE("throttle", "chat", "0.5/s")),
	BAD("throttle.chat blank", H "[throttle]\nchat = 30 /s\n", NOTRATE("throttle", "chat", "30 /s")),
	BAD("throttle.chat no count", H "[throttle]\nchat = /s\n", NOTRATE("throttle", "chat", "/s")),
	BAD("throttle.group no unit", H "[throttle]\ngroup = 20/\n", NOTRATE("throttle", "group", "20/")),
	BAD("throttle.group duration", H "[throttle]\ngroup = 3s\n", NOTRATE("throttle", "group", "3s")),
	BAD("throttle.group empty", H "[throttle]\ngroup =\n",
	    EMPTY("throttle", "group") RATE_ACC ")"),
	BAD("throttle.chat duplicate", H "[throttle]\nchat = 1/s\nchat = 2/s\n",
	    "bot.conf:5: [throttle] chat: duplicate key, first set on line 4"),
	BAD("throttle unknown key", H "[throttle]\nper_chat = 1/s\n",
	    UNKNOWN("throttle", "per_chat", "enabled, global, chat, group")),

	/* [cluster] */
	OK_STR("cluster.nats one", H "[cluster]\nnats = nats://127.0.0.1:4222\n", cluster_nats,
	    "nats://127.0.0.1:4222"),
	OK_STR("cluster.nats list", H "[cluster]\nnats = nats://a:4222 , tls://u:p@b:4223,nats://c\n",
	    cluster_nats, "nats://a:4222,tls://u:p@b:4223,nats://c"),
	OK_FN("cluster defaults", H "[cluster]\nnats = nats://127.0.0.1:4222\n",
	    check_cluster_defaults),
	BAD_SECRET("cluster.nats bad scheme", H "[cluster]\nnats = nats://a, http://u:SECRET@h\n",
	    "bot.conf:4: [cluster] nats: URL 2: the scheme is not accepted (accepted: one or "
	    "more URLs nats://", "SECRET"),
	BAD_SECRET("cluster.nats blank", H "[cluster]\nnats = nats://u:SEC RET@h\n",
	    "bot.conf:4: [cluster] nats: URL 1: contains a blank", "SEC"),
	BAD_SECRET("cluster.nats no host", H "[cluster]\nnats = nats://u:SECRET@:4222\n",
	    "bot.conf:4: [cluster] nats: URL 1: no host", "SECRET"),
	BAD("cluster.nats empty item", H "[cluster]\nnats = nats://a,,nats://b\n",
	    "bot.conf:4: [cluster] nats: URL 2: the scheme is not accepted"),
	BAD("cluster.nats empty", H "[cluster]\nnats =\n", EMPTY("cluster", "nats")),
	BAD("cluster without nats", H "[cluster]\nreplicas = 1\n",
	    "bot.conf:4: [cluster] nats: missing (accepted: one or more URLs"),
	OK_STR("cluster.node", H "[cluster]\nnats = nats://h\nnode = alpha_1-b\n", cluster_node,
	    "alpha_1-b"),
	BAD("cluster.node dot", H "[cluster]\nnode = a.b\n",
	    NOTACC("cluster", "node", "a.b") "1..64 characters of A-Z a-z 0-9 _ -)"),
	OK_FN("cluster.credentials", H "[cluster]\nnats = nats://h\ncredentials = h.so\n",
	    check_cluster_credentials),
	BAD("cluster.credentials missing file", H "[cluster]\ncredentials = none.creds\n",
	    "bot.conf:4: [cluster] credentials: none.creds: No such file or directory"),
	OK_INT("cluster.replicas", H "[cluster]\nnats = nats://h\nreplicas = 1\n",
	    cluster_replicas, 1),
	BAD("cluster.replicas 6", H "[cluster]\nreplicas = 6\n",
	    RANGE("cluster", "replicas", "6", "an integer 1..5")),
	OK_I64("cluster.lease", H "[cluster]\nnats = nats://h\nlease = 1500ms\n",
	    cluster_lease_ms, 1500),
	BAD("cluster.lease short", H "[cluster]\nlease = 500ms\n",
	    RANGE("cluster", "lease", "500ms", "a duration 1s..1m: a number with ms, s or m; "
	    "bare = seconds")),
	BAD("cluster unknown key", H "[cluster]\nurls = nats://h\n",
	    UNKNOWN("cluster", "urls", "nats, credentials, node, replicas, lease")),

	/* [log] */
	OK_INT("log.level error", H "[log]\nlevel = error\n", log_level, LOG_LVL_ERR),
	OK_INT("log.level warn", H "[log]\nlevel = warn\n", log_level, LOG_LVL_WARN),
	OK_INT("log.level notice", H "[log]\nlevel = notice\n", log_level, LOG_LVL_NOTICE),
	OK_INT("log.level info", H "[log]\nlevel = info\n", log_level, LOG_LVL_INFO),
	OK_INT("log.level debug", H "[log]\nlevel = debug\n", log_level, LOG_LVL_DEBUG),
	BAD("log.level verbose", H "[log]\nlevel = verbose\n",
	    NOTACC("log", "level", "verbose") "error, warn, notice, info, debug)"),
	BAD("log.level upper", H "[log]\nlevel = INFO\n", NOTACC("log", "level", "INFO")),
	BAD("log.level empty", H "[log]\nlevel =\n", EMPTY("log", "level")),
	BAD("log unknown key", H "[log]\nlvl = info\n", UNKNOWN("log", "lvl", "level")),

	/* [handler] */
	OK_FN("handler kv", H "[handler]\na = 1\nB_key = two words\na = 3\ndb.url = x=y\n",
	    check_handler_kv),
	OK_FN("handler multi-line value", H "[handler]\ntext = line one\n  line two\n\tline three\n",
	    check_handler_multiline),
	OK_FN("handler empty value", H "[handler]\nflag =\n", check_handler_empty),
	BAD("handler empty key", H "[handler]\n= 5\n",
	    "bot.conf:4: [handler]: empty key name (accepted: key = value)"),

	/* The file's structure */
	BAD("unknown section", H "[polling]\ntimeout = 5\n",
	    "bot.conf:3: unknown section [polling] (accepted: bot, poll, workers, order, "
	    "limits, journal, control, metrics, api, throttle, log, cluster, handler)"),
	BAD("unknown empty section", H "\n[polling]\n", "bot.conf:4: unknown section [polling]"),
	BAD("unknown section before handler", "[Poll]\n" H, "bot.conf:1: unknown section [Poll]"),
	BAD("unknown section with spaces", H "[ poll ]\n", "bot.conf:3: unknown section [ poll ]"),
	BAD("indented unknown section", "  [polling]\nx = 1\n" H,
	    "bot.conf:2: unknown section [polling]"),
	BAD("uppercase key", H "[poll]\nTimeout = 5\n", "bot.conf:4: [poll] Timeout: unknown key"),
	BAD("key outside any section", "limit = 5\n" H,
	    "bot.conf:1: limit: key outside any section (accepted: keys after a [section] line: "
	    "bot, poll, workers, order, limits, journal, control, metrics, api, throttle, "
	    "log, cluster, handler)"),
	BAD("syntax error", H "[poll]\nthis is not a pair\n",
	    "bot.conf:4: syntax error (accepted: [section], key = value, ; comment, # comment)"),
	BAD("unclosed section", H "[poll\nlimit = 5\n", "bot.conf:3: syntax error"),
	BAD("syntax error before bad value", H "garbage\n[limits]\nconcurrency = abc\n",
	    "bot.conf:3: syntax error"),
	BAD("bad value before syntax error", H "[limits]\nconcurrency = abc\ngarbage\n",
	    "bot.conf:4: [limits] concurrency: \"abc\" is not a number"),
	BAD("duplicate key", H "[poll]\nlimit = 5\nlimit = 6\n",
	    "bot.conf:5: [poll] limit: duplicate key, first set on line 4 (accepted: each key once)"),
	BAD("duplicate key, section repeated", H "[poll]\nlimit = 5\n[poll]\nlimit = 6\n",
	    "bot.conf:6: [poll] limit: duplicate key, first set on line 4"),
	BAD("duplicate handler key", "[workers]\nhandler = h.so\nhandler = h.so\n",
	    "bot.conf:3: [workers] handler: duplicate key, first set on line 2"),
	OK_FN("section repeated", H "[poll]\nlimit = 5\n[limits]\nconcurrency = 9\n[poll]\ntimeout = 7\n",
	    check_repeated_section),
	BAD("indented continuation of a scalar", H "[poll]\nlimit = 5\n  timeout = 3\n",
	    "bot.conf:5: [poll] limit: indented line continues the value (accepted: one-line values; "
	    "only lists and [handler] values continue on indented lines)"),
	OK_INT("indented first key", H "[poll]\n  limit = 5\n", poll_limit, 5),
	OK_FN("comments, blank lines, inline comment", "; comment\n# comment\n\n" H
	    "[poll] ; the poller\nlimit = 5 ; five\n# timeout = 3\n", check_comments),
	BAD("line numbers count comments", "; a\n\n# b\n" H "\n; c\n[poll]\nlimit = x\n",
	    "bot.conf:9: [poll] limit: \"x\" is not a number"),
	OK_INT("CRLF line ends", "[workers]\r\nhandler = h.so\r\n[poll]\r\nlimit = 7\r\n", poll_limit, 7),
	OK_INT("no final newline", H "[poll]\nlimit = 7", poll_limit, 7),
	OK_INT("UTF-8 BOM", "\xEF\xBB\xBF" H "[poll]\nlimit = 8\n", poll_limit, 8),
	OK_INT("colon separator", H "[poll]\nlimit: 9\n", poll_limit, 9),
	BAD("long line then error", H "[poll]\nallowed_updates = " ALL_UPDATES "\nlimit = 0\n",
	    "bot.conf:4: line too long"),
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static void
write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static char *
cwd_join(const char *name)
{
	static char buf[PATH_MAX + 64];

	snprintf(buf, sizeof(buf), "%s/%s", tmpdir, name);
	return buf;
}

static void
run_case(void **state)
{
	const struct tcase *tc = *state;
	struct config *cfg;
	char err[1024];
	const void *p;

	write_file("bot.conf", tc->text, strlen(tc->text));
	memset(err, 'Z', sizeof(err));
	cfg = config_load("bot.conf", err, sizeof(err));
	if (tc->err != NULL) {
		if (cfg != NULL)
			fail_msg("%s: loaded, expected \"%s\"", tc->name, tc->err);
		if (strncmp(err, tc->err, strlen(tc->err)) != 0)
			fail_msg("%s:\n  got      \"%s\"\n  expected \"%s...\"",
			    tc->name, err, tc->err);
		assert_null(strchr(err, '\n'));
		if (tc->absent != NULL)
			assert_null(strstr(err, tc->absent));
		return;
	}
	if (cfg == NULL)
		fail_msg("%s: %s", tc->name, err);
	p = (const char *)cfg + tc->off;
	switch (tc->ck) {
	case CK_INT:
		assert_int_equal(*(const int *)p, tc->num);
		break;
	case CK_I64:
		assert_int_equal(*(const int64_t *)p, tc->num);
		break;
	case CK_SIZE:
		assert_int_equal(*(const size_t *)p, tc->num);
		break;
	case CK_UNS:
		assert_int_equal(*(const unsigned *)p, tc->num);
		break;
	case CK_U32:
		assert_int_equal(*(const uint32_t *)p, tc->num);
		break;
	case CK_RATE:
		assert_int_equal(((const struct cfg_rate *)p)->n, tc->num);
		assert_int_equal(((const struct cfg_rate *)p)->period_ms,
		    strcmp(tc->str, "m") == 0 ? 60000 : 1000);
		break;
	case CK_STR:
		assert_non_null(*(char *const *)p);
		assert_string_equal(*(char *const *)p, tc->str);
		break;
	case CK_FN:
		tc->fn(cfg);
		break;
	case CK_NONE:
		break;
	}
	config_free(cfg);
}

static void
check_all_updates(const struct config *cfg)
{
	char want[1024];
	size_t n = 0;
	const char *p = ALL_UPDATES;

	want[n++] = '[';
	while (*p != '\0') {
		size_t len = strcspn(p, ",");

		n += (size_t)snprintf(want + n, sizeof(want) - n, "%s\"%.*s\"",
		    n > 1 ? "," : "", (int)len, p);
		p += len;
		while (*p == ',' || *p == ' ')
			p++;
	}
	snprintf(want + n, sizeof(want) - n, "]");
	assert_string_equal(cfg->allowed_updates, want);
}

static void
check_api_url_default(const struct config *cfg)
{
	assert_string_equal(cfg->api_url, "https://api.telegram.org");
}

static void
check_handler_kv(const struct config *cfg)
{
	assert_int_equal(cfg->handler_nkv, 3);
	assert_string_equal(cfg->handler_kv[0].key, "a");
	assert_string_equal(cfg->handler_kv[0].value, "3");
	assert_string_equal(cfg->handler_kv[1].key, "B_key");
	assert_string_equal(cfg->handler_kv[1].value, "two words");
	assert_string_equal(cfg->handler_kv[2].key, "db.url");
	assert_string_equal(config_handler_get(cfg, "a"), "3");
	assert_string_equal(config_handler_get(cfg, "B_key"), "two words");
	assert_string_equal(config_handler_get(cfg, "db.url"), "x=y");
	assert_null(config_handler_get(cfg, "b_key"));
	assert_null(config_handler_get(cfg, "missing"));
}

static void
check_handler_multiline(const struct config *cfg)
{
	assert_string_equal(config_handler_get(cfg, "text"),
	    "line one\nline two\nline three");
}

static void
check_handler_empty(const struct config *cfg)
{
	assert_string_equal(config_handler_get(cfg, "flag"), "");
}

static void
check_relative_handler(const struct config *cfg)
{
	assert_string_equal(cfg->handler, cwd_join("h.so"));
}

static void
check_relative_journal(const struct config *cfg)
{
	assert_string_equal(cfg->journal_path, cwd_join("j.db"));
}

static void
check_relative_control(const struct config *cfg)
{
	assert_string_equal(cfg->control_socket, cwd_join("c.sock"));
}

static void
check_control_default(const struct config *cfg)
{
	assert_string_equal(cfg->control_socket, cwd_join("bot.control.sock"));
}

static void
check_metrics_off(const struct config *cfg)
{
	assert_null(cfg->metrics_listen);
}

static void
check_relative_token_file(const struct config *cfg)
{
	assert_string_equal(cfg->token_file, cwd_join("tok"));
}

static void
check_stack_rounded(const struct config *cfg)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	assert_int_equal(cfg->stack_size % page, 0);
	assert_true(cfg->stack_size >= 100000 && cfg->stack_size < 100000 + page);
}

static void
check_worker_conc_div(const struct config *cfg)
{
	assert_int_equal(cfg->worker_count, 4);
	assert_int_equal(cfg->worker_concurrency, 2);
}

static void
check_worker_conc_min(const struct config *cfg)
{
	assert_int_equal(cfg->worker_count, 8);
	assert_int_equal(cfg->worker_concurrency, 1);
}

static void
check_worker_conc_auto(const struct config *cfg)
{
	int want = 500 / cfg->worker_count;

	assert_int_equal(cfg->worker_concurrency, want < 1 ? 1 : want);
}

static void
check_count_auto(const struct config *cfg)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	assert_int_equal(cfg->worker_count, n < 1 ? 1 : n > 256 ? 256 : n);
}

static void
check_token(const struct config *cfg)
{
	assert_string_equal(cfg->token, "123456:ABC-def_ghi");
	assert_int_equal(cfg->token_line, 4);
	assert_null(cfg->token_file);
}

static void
check_repeated_section(const struct config *cfg)
{
	assert_int_equal(cfg->poll_limit, 5);
	assert_int_equal(cfg->poll_timeout_ms, 7000);
	assert_int_equal(cfg->concurrency, 9);
}

static void
check_comments(const struct config *cfg)
{
	assert_int_equal(cfg->poll_limit, 5);
	assert_int_equal(cfg->poll_timeout_ms, 30000);
}

/* Every field of a file that sets nothing but the handler. */
static void
test_defaults(void **state)
{
	struct config *cfg;
	char err[512];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int want;

	(void)state;
	write_file("bot.conf", H, strlen(H));
	cfg = config_load("bot.conf", err, sizeof(err));
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_string_equal(cfg->path, cwd_join("bot.conf"));
	assert_string_equal(cfg->name, "bot");
	assert_null(cfg->token_file);
	assert_null(cfg->token);
	assert_int_equal(cfg->token_line, 0);
	assert_string_equal(cfg->api_url, "https://api.telegram.org");
	assert_int_equal(cfg->poll_timeout_ms, 30000);
	assert_int_equal(cfg->poll_limit, 100);
	assert_null(cfg->allowed_updates);
	assert_int_equal(cfg->delete_webhook, 0);
	assert_int_equal(cfg->worker_count, cpus < 1 ? 1 : cpus > 256 ? 256 : cpus);
	assert_string_equal(cfg->handler, cwd_join("h.so"));
	assert_int_equal(cfg->stack_size, 256 * 1024);
	assert_int_equal(cfg->max_updates, 0);
	assert_int_equal(cfg->sequentialize, CFG_SEQ_CHAT);
	assert_int_equal(cfg->bypass, 0);
	assert_int_equal(cfg->concurrency, 500);
	want = 500 / cfg->worker_count;
	assert_int_equal(cfg->worker_concurrency, want < 1 ? 1 : want);
	assert_int_equal(cfg->max_pending, 10000);
	assert_int_equal(cfg->update_timeout_ms, 60000);
	assert_int_equal(cfg->shutdown_timeout_ms, 30000);
	assert_int_equal(cfg->max_attempts, 3);
	assert_int_equal(cfg->kill_grace_ms, 5000);
	assert_int_equal(cfg->heartbeat_timeout_ms, 10000);
	assert_string_equal(cfg->journal_path, cwd_join("bot.journal.db"));
	assert_int_equal(cfg->journal_enabled, 1);
	assert_int_equal(cfg->journal_sync, CFG_SYNC_FULL);
	assert_int_equal(cfg->api_timeout_ms, 30000);
	assert_int_equal(cfg->api_retries, 3);
	assert_int_equal(cfg->api_retry_after_max_ms, 30000);
	assert_int_equal(cfg->throttle_enabled, 0);
	assert_int_equal(cfg->throttle_global.n, 30);
	assert_int_equal(cfg->throttle_global.period_ms, 1000);
	assert_int_equal(cfg->throttle_chat.n, 1);
	assert_int_equal(cfg->throttle_chat.period_ms, 1000);
	assert_int_equal(cfg->throttle_group.n, 20);
	assert_int_equal(cfg->throttle_group.period_ms, 60000);
	assert_int_equal(cfg->log_level, LOG_LVL_INFO);
	assert_null(cfg->cluster_nats);
	assert_null(cfg->cluster_node);
	assert_null(cfg->cluster_credentials);
	assert_int_equal(cfg->handler_nkv, 0);
	assert_null(cfg->handler_kv);
	assert_null(config_handler_get(cfg, "anything"));
	config_free(cfg);
}

static void
load_ok(const char *file, const char *text, struct config **cfg)
{
	char err[512];

	write_file(file, text, strlen(text));
	*cfg = config_load(file, err, sizeof(err));
	if (*cfg == NULL)
		fail_msg("%s", err);
}

/* The bot name defaults to the file name without .conf. */
static void
test_name_from_file(void **state)
{
	struct config *cfg;
	char err[512];

	(void)state;
	load_ok("my.bot.conf", H, &cfg);
	assert_string_equal(cfg->name, "my.bot");
	assert_string_equal(cfg->journal_path, cwd_join("my.bot.journal.db"));
	config_free(cfg);
	unlink("my.bot.conf");

	load_ok("plainfile", H, &cfg);
	assert_string_equal(cfg->name, "plainfile");
	config_free(cfg);
	unlink("plainfile");

	assert_int_equal(mkdir("sub", 0700), 0);
	/* The handler is found next to the file (test_relative_to_the_file). */
	write_file("sub/h.so", "\x7f" "ELF", 4);
	load_ok("sub/inner.conf", "[bot]\nname = other\n" H, &cfg);
	assert_string_equal(cfg->name, "other");
	assert_string_equal(cfg->path, cwd_join("sub/inner.conf"));
	assert_string_equal(cfg->journal_path, cwd_join("other.journal.db"));
	config_free(cfg);
	unlink("sub/inner.conf");
	unlink("sub/h.so");
	rmdir("sub");

	write_file(".conf", H, strlen(H));
	assert_null(config_load(".conf", err, sizeof(err)));
	assert_string_equal(err, ".conf: [bot] name: \"\" (from the file name) is not "
	    "accepted (accepted: set name = 1..64 characters of A-Z a-z 0-9 . _ - "
	    "not starting with .)");
	unlink(".conf");
}

static void
test_state_directory(void **state)
{
	struct config *cfg;

	(void)state;
	setenv("STATE_DIRECTORY", "/var/lib/tgrun-bot", 1);
	load_ok("bot.conf", H, &cfg);
	assert_string_equal(cfg->journal_path, "/var/lib/tgrun-bot/journal.db");
	config_free(cfg);

	setenv("STATE_DIRECTORY", "/var/lib/a:/var/lib/b", 1);
	load_ok("bot.conf", H, &cfg);
	assert_string_equal(cfg->journal_path, "/var/lib/a/journal.db");
	config_free(cfg);

	load_ok("bot.conf", H "[journal]\npath = /srv/j.db\n", &cfg);
	assert_string_equal(cfg->journal_path, "/srv/j.db");
	config_free(cfg);

	setenv("STATE_DIRECTORY", "", 1);
	load_ok("bot.conf", H, &cfg);
	assert_string_equal(cfg->journal_path, cwd_join("bot.journal.db"));
	config_free(cfg);
	unsetenv("STATE_DIRECTORY");
}

/* [cluster] credentials default: $CREDENTIALS_DIRECTORY/nats.creds when it exists. */
static void
test_credentials_directory(void **state)
{
	static const char text[] = H "[cluster]\nnats = nats://127.0.0.1\n";
	struct config *cfg;

	(void)state;
	setenv("CREDENTIALS_DIRECTORY", tmpdir, 1);
	load_ok("bot.conf", text, &cfg);
	assert_null(cfg->cluster_credentials);
	config_free(cfg);

	write_file("nats.creds", "x\n", 2);
	load_ok("bot.conf", text, &cfg);
	assert_string_equal(cfg->cluster_credentials, cwd_join("nats.creds"));
	config_free(cfg);

	load_ok("bot.conf", H "[cluster]\nnats = nats://h\ncredentials = h.so\n", &cfg);
	check_cluster_credentials(cfg);
	config_free(cfg);

	/* Without [cluster], the file is not looked at. */
	load_ok("bot.conf", H, &cfg);
	assert_null(cfg->cluster_credentials);
	config_free(cfg);
	unsetenv("CREDENTIALS_DIRECTORY");
	unlink("nats.creds");
}

static void
test_runtime_directory(void **state)
{
	struct config *cfg;

	(void)state;
	setenv("RUNTIME_DIRECTORY", "/run/tgrun/bot", 1);
	load_ok("bot.conf", H, &cfg);
	assert_string_equal(cfg->control_socket, "/run/tgrun/bot/control.sock");
	config_free(cfg);

	setenv("RUNTIME_DIRECTORY", "/run/a:/run/b", 1);
	load_ok("bot.conf", H, &cfg);
	assert_string_equal(cfg->control_socket, "/run/a/control.sock");
	config_free(cfg);

	load_ok("bot.conf", H "[control]\nsocket = /srv/c.sock\n", &cfg);
	assert_string_equal(cfg->control_socket, "/srv/c.sock");
	config_free(cfg);
	unsetenv("RUNTIME_DIRECTORY");
}

/* Run `text` through config_load with stderr captured into `out`. */
static struct config *
load_capturing(const char *text, char *err, size_t errlen, char *out, size_t outlen)
{
	struct config *cfg;
	int saved, fd;
	ssize_t n;

	write_file("bot.conf", text, strlen(text));
	fd = open("stderr.txt", O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	dup2(fd, STDERR_FILENO);
	cfg = config_load("bot.conf", err, errlen);
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fd, out, outlen - 1, 0);
	assert_true(n >= 0);
	out[n] = '\0';
	close(fd);
	unlink("stderr.txt");
	return cfg;
}

/* A token in the file loads, with a warning that never shows the token. */
static void
test_token_warning(void **state)
{
	struct config *cfg;
	char err[512], out[4096];

	(void)state;
	cfg = load_capturing(H "[bot]\ntoken = 4242:SECRETTOKEN\n", err, sizeof(err),
	    out, sizeof(out));
	assert_non_null(cfg);
	assert_non_null(strstr(out, "bot.conf:4: [bot] token: a token in the config "
	    "file is discouraged; use LoadCredential= or token_file"));
	assert_null(strstr(out, "SECRETTOKEN"));
	assert_string_equal(cfg->token, "4242:SECRETTOKEN");
	config_free(cfg);

	/* No warning without a token, and none for a file that fails. */
	cfg = load_capturing(H "[bot]\ntoken_file = /run/t\n", err, sizeof(err),
	    out, sizeof(out));
	assert_non_null(cfg);
	assert_string_equal(out, "");
	config_free(cfg);
	cfg = load_capturing(H "[bot]\ntoken = 1:SECRETTOKEN\n[poll]\nlimit = 0\n",
	    err, sizeof(err), out, sizeof(out));
	assert_null(cfg);
	assert_null(strstr(err, "SECRETTOKEN"));
	assert_string_equal(out, "");
}

/*
 * Relative paths in a file are taken from its directory, whatever the
 * current directory; the defaults (no key) stay in the current directory.
 */
static void
test_relative_to_the_file(void **state)
{
	static const char text[] = "[workers]\nhandler = h.so\n"
	    "[bot]\ntoken_file = ./tok\n"
	    "[journal]\npath = ../up.db\n"
	    "[control]\nsocket = run/c.sock\n"
	    "[api]\nca_file = ca.pem\nca_path = .\n";
	struct config *cfg;
	char path[PATH_MAX + 64], want[PATH_MAX + 64];

	(void)state;
	assert_int_equal(mkdir("etc", 0700), 0);
	write_file("etc/h.so", "\x7f" "ELF", 4);
	write_file("etc/ca.pem", "-", 1);
	load_ok("etc/rel.conf", text, &cfg);
	snprintf(want, sizeof(want), "%s", cwd_join("etc/h.so"));
	assert_string_equal(cfg->handler, want);
	assert_string_equal(cfg->token_file, cwd_join("etc/tok"));
	assert_string_equal(cfg->journal_path, cwd_join("etc/../up.db"));
	assert_string_equal(cfg->control_socket, cwd_join("etc/run/c.sock"));
	assert_string_equal(cfg->api_ca_file, cwd_join("etc/ca.pem"));
	assert_string_equal(cfg->api_ca_path, cwd_join("etc/."));
	config_free(cfg);

	/* The same from elsewhere: the file's directory counts, not the cwd. */
	snprintf(path, sizeof(path), "%s", cwd_join("etc/rel.conf"));
	assert_int_equal(chdir("/"), 0);
	cfg = config_load(path, want, sizeof(want));
	assert_int_equal(chdir(tmpdir), 0);
	if (cfg == NULL)
		fail_msg("%s", want);
	assert_string_equal(cfg->handler, cwd_join("etc/h.so"));
	assert_string_equal(cfg->control_socket, cwd_join("etc/run/c.sock"));
	config_free(cfg);

	/* A file in the cwd without the keys: defaults in the cwd. */
	load_ok("etc/def.conf", "[workers]\nhandler = h.so\n", &cfg);
	assert_string_equal(cfg->journal_path, cwd_join("def.journal.db"));
	assert_string_equal(cfg->control_socket, cwd_join("def.control.sock"));
	config_free(cfg);
	unlink("etc/def.conf");
	unlink("etc/rel.conf");
	unlink("etc/ca.pem");
	unlink("etc/h.so");
	rmdir("etc");
}

/* http:// to anywhere but loopback sends the token in clear: a warning. */
static void
test_api_url_warning(void **state)
{
	static const char *const quiet[] = {
		"https://api.telegram.org", "https://10.0.0.1:8081", "http://127.0.0.1:8081",
		"http://127.1.2.3", "http://localhost:8081/x", "http://LOCALHOST",
		"http://[::1]:8081", "http://u:p@127.0.0.1",
	};
	static const struct { const char *url, *host; } loud[] = {
		{ "http://api.telegram.org", "api.telegram.org" },
		{ "http://10.0.0.1:8081", "10.0.0.1" },
		{ "http://user:SECRETPW@192.168.1.9:81/", "192.168.1.9" },
		{ "http://[2001:db8::1]:8081", "[2001:db8::1]" },
		{ "http://localhost.example.org", "localhost.example.org" },
		{ "http://127.0.0.1@evil.example", "evil.example" },
	};
	struct config *cfg;
	char text[256], err[512], out[4096], want[256];

	(void)state;
	for (size_t i = 0; i < sizeof(quiet) / sizeof(quiet[0]); i++) {
		snprintf(text, sizeof(text), H "[bot]\napi_url = %s\n", quiet[i]);
		cfg = load_capturing(text, err, sizeof(err), out, sizeof(out));
		if (cfg == NULL)
			fail_msg("%s: %s", quiet[i], err);
		if (out[0] != '\0')
			fail_msg("%s: warned: %s", quiet[i], out);
		config_free(cfg);
	}
	for (size_t i = 0; i < sizeof(loud) / sizeof(loud[0]); i++) {
		snprintf(text, sizeof(text), H "[bot]\napi_url = %s\n", loud[i].url);
		cfg = load_capturing(text, err, sizeof(err), out, sizeof(out));
		if (cfg == NULL)
			fail_msg("%s: %s", loud[i].url, err);
		snprintf(want, sizeof(want), "bot.conf:4: [bot] api_url: http:// to %s, "
		    "which is not a loopback address: the bot token crosses the network "
		    "unencrypted; use https://\n", loud[i].host);
		if (strstr(out, want) == NULL)
			fail_msg("%s: logged \"%s\"", loud[i].url, out);
		assert_null(strstr(out, "SECRETPW"));
		config_free(cfg);
	}
}

static void
test_cannot_open(void **state)
{
	struct config *cfg;
	char err[512];

	(void)state;
	cfg = config_load("missing.conf", err, sizeof(err));
	assert_null(cfg);
	assert_string_equal(err, "missing.conf: cannot open: No such file or directory");

	assert_int_equal(mkdir("dir.conf", 0700), 0);
	cfg = config_load("dir.conf", err, sizeof(err));
	assert_null(cfg);
	assert_string_equal(err, "dir.conf: cannot open: Is a directory");
	rmdir("dir.conf");

	/* root reads anything: permissions can only be tested as a user. */
	if (geteuid() == 0)
		return;
	write_file("bot.conf", H, strlen(H));
	chmod("bot.conf", 0);
	cfg = config_load("bot.conf", err, sizeof(err));
	chmod("bot.conf", 0600);
	assert_null(cfg);
	assert_string_equal(err, "bot.conf: cannot open: Permission denied");
}

static void
test_handler_unreadable(void **state)
{
	struct config *cfg;
	char err[512];
	pid_t pid;
	int st;

	(void)state;
	/* A path through a regular file: fails for every user, root included. */
	write_file("plain", "x", 1);
	write_file("bot.conf", "[workers]\nhandler = plain/h.so\n", 31);
	cfg = config_load("bot.conf", err, sizeof(err));
	assert_null(cfg);
	assert_string_equal(err, "bot.conf:2: [workers] handler: plain/h.so: Not a directory");
	unlink("plain");

	/* Permissions bind only non-root users: check as nobody when root. */
	write_file("locked.so", "x", 1);
	chmod("locked.so", 0);
	write_file("bot.conf", "[workers]\nhandler = locked.so\n", 29);
	chmod(".", 0755);
	chmod("bot.conf", 0644);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (geteuid() == 0 && setresuid(65534, 65534, 65534) != 0)
			_exit(3);
		cfg = config_load("bot.conf", err, sizeof(err));
		_exit(cfg == NULL && strcmp(err, "bot.conf:2: [workers] handler: "
		    "locked.so: Permission denied") == 0 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	unlink("locked.so");
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* inih's buffer holds 199 characters and the newline; longer lines are refused. */
static void
test_line_length(void **state)
{
	struct config *cfg;
	char text[512], err[512], *p;
	size_t n;

	(void)state;
	for (int len = 198; len <= 200; len++) {
		for (int final_newline = 0; final_newline <= 1; final_newline++) {
			n = (size_t)snprintf(text, sizeof(text), H "[handler]\nk = ");
			p = text + n;
			memset(p, 'x', (size_t)len - 4);
			p += len - 4;
			strcpy(p, final_newline ? "\n[poll]\nlimit = 3\n" : "");
			write_file("bot.conf", text, strlen(text));
			cfg = config_load("bot.conf", err, sizeof(err));
			if (len == 200) {
				assert_null(cfg);
				assert_string_equal(err, "bot.conf:4: line too long (accepted: "
				    "lines of at most 199 characters; lists and [handler] "
				    "values may continue on indented lines)");
				continue;
			}
			if (cfg == NULL)
				fail_msg("%d characters: %s", len, err);
			assert_int_equal(strlen(config_handler_get(cfg, "k")), len - 4);
			assert_int_equal(cfg->poll_limit, final_newline ? 3 : 100);
			config_free(cfg);
		}
	}
}

/* A NUL byte would hide the rest of its line from inih. */
static void
test_nul_byte(void **state)
{
	static const char text[] = H "[poll]\nlimit = 5\0junk\ntimeout = 3\n";
	char err[512];

	(void)state;
	write_file("bot.conf", text, sizeof(text) - 1);
	assert_null(config_load("bot.conf", err, sizeof(err)));
	assert_string_equal(err, "bot.conf:4: NUL byte in line (accepted: a text file)");
}

/* A small buffer gets a cut, terminated line; errlen 0 is left alone. */
static void
test_small_err_buffer(void **state)
{
	char err[16];

	(void)state;
	write_file("bot.conf", "[polling]\n", 10);
	memset(err, 'Z', sizeof(err));
	assert_null(config_load("bot.conf", err, sizeof(err)));
	assert_string_equal(err, "bot.conf:1: unk");
	assert_null(config_load("bot.conf", NULL, 0));
	assert_null(config_load("bot.conf", err, 1));
	assert_string_equal(err, "");
}

static void
test_parse_duration(void **state)
{
	static const struct { const char *s; int64_t ms; } good[] = {
		{ "0", 0 }, { "2", 2000 }, { "250ms", 250 }, { "30s", 30000 },
		{ "5m", 300000 }, { "0ms", 0 }, { "007s", 7000 },
		{ "9223372036854775807ms", INT64_MAX },
		{ "9223372036854775s", 9223372036854775000LL },
	};
	static const char *const bad[] = {
		"", "10x", "-1s", "-1", "s", "ms", "m", "1.5s", " 1s", "1s ", "1 s",
		"1S", "1h", "1d", "1mss", "+1s", "0x10", "1e3",
		"9223372036854775808ms", "9223372036854776s", "153722867280912931m",
		"99999999999999999999", "999999999999999999999999999999ms",
	};
	int64_t ms;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ms = -42;
		if (units_parse_duration(good[i].s, &ms) != 0)
			fail_msg("\"%s\" refused", good[i].s);
		assert_int_equal(ms, good[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ms = -42;
		if (units_parse_duration(bad[i], &ms) == 0)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_int_equal(ms, -42);
	}
}

static void
test_parse_size(void **state)
{
	static const struct { const char *s; int64_t n; } good[] = {
		{ "0", 0 }, { "65536", 65536 }, { "256k", 262144 }, { "8m", 8 << 20 },
		{ "1k", 1024 }, { "9223372036854775807", 9223372036854775807ULL },
		{ "9007199254740991k", 9007199254740991ULL * 1024 },
	};
	static const char *const bad[] = {
		"", "10x", "-1", "-1k", "k", "m", "1g", "1K", "1M", "1kb", " 1k",
		"1k ", "1 k", "1.5k", "+1", "0x10",
		"9223372036854775808", "9007199254740992k", "8796093022208m",
		"99999999999999999999",
	};
	int64_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		n = 42;
		if (units_parse_size(good[i].s, &n) != 0)
			fail_msg("\"%s\" refused", good[i].s);
		assert_int_equal(n, good[i].n);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = 42;
		if (units_parse_size(bad[i], &n) == 0)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_int_equal(n, 42);
	}
}

static void
test_parse_bool(void **state)
{
	static const struct { const char *s; int v; } good[] = {
		{ "yes", 1 }, { "true", 1 }, { "on", 1 }, { "1", 1 },
		{ "no", 0 }, { "false", 0 }, { "off", 0 }, { "0", 0 },
	};
	static const char *const bad[] = {
		"", "Yes", "YES", "y", "n", "2", "-1", "onn", "true ", " no", "enabled",
		"00", "01",
	};
	int v;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 42;
		if (units_parse_bool(good[i].s, &v) != 0)
			fail_msg("\"%s\" refused", good[i].s);
		assert_int_equal(v, good[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 42;
		if (units_parse_bool(bad[i], &v) != -1)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_int_equal(v, 42);
	}
}

static int
group_setup(void **state)
{
	(void)state;
	unsetenv("STATE_DIRECTORY");
	unsetenv("RUNTIME_DIRECTORY");
	if (getcwd(oldcwd, sizeof(oldcwd)) == NULL)
		return -1;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/tgrun-test-config-XXXXXX");
	if (mkdtemp(tmpdir) == NULL || chdir(tmpdir) == -1)
		return -1;
	/* getcwd() is what config_load() joins relative paths to. */
	if (getcwd(tmpdir, sizeof(tmpdir)) == NULL)
		return -1;
	write_file("h.so", "\x7f" "ELF", 4);
	return 0;
}

static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
group_teardown(void **state)
{
	(void)state;
	/* Whatever a failed test left behind goes too. */
	if (nftw(tmpdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS) == -1 ||
	    chdir(oldcwd) == -1) {
		fprintf(stderr, "cannot remove %s: %s\n", tmpdir, strerror(errno));
		return -1;
	}
	return 0;
}

static void check_proxy_off(const struct config *cfg)
{
	assert_null(cfg->api_proxy);
}

static void check_cluster_credentials(const struct config *cfg)
{
	assert_string_equal(cfg->cluster_credentials, cwd_join("h.so"));
}

static void check_cluster_defaults(const struct config *cfg)
{
	char host[256];

	assert_int_equal(cfg->cluster_replicas, 3);
	assert_int_equal(cfg->cluster_lease_ms, 5000);
	assert_null(cfg->cluster_credentials);
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	host[strcspn(host, ".")] = '\0';
	assert_string_equal(cfg->cluster_node, host);
}

static const struct CMUnitTest others[] = {
	cmocka_unit_test(test_defaults),
	cmocka_unit_test(test_name_from_file),
	cmocka_unit_test(test_state_directory),
	cmocka_unit_test(test_runtime_directory),
	cmocka_unit_test(test_credentials_directory),
	cmocka_unit_test(test_token_warning),
	cmocka_unit_test(test_relative_to_the_file),
	cmocka_unit_test(test_api_url_warning),
	cmocka_unit_test(test_cannot_open),
	cmocka_unit_test(test_handler_unreadable),
	cmocka_unit_test(test_line_length),
	cmocka_unit_test(test_nul_byte),
	cmocka_unit_test(test_small_err_buffer),
	cmocka_unit_test(test_parse_duration),
	cmocka_unit_test(test_parse_size),
	cmocka_unit_test(test_parse_bool),
};
#define NOTHERS (sizeof(others) / sizeof(others[0]))

int
main(void)
{
	static struct CMUnitTest tests[NCASES + NOTHERS];

	for (size_t i = 0; i < NCASES; i++) {
		tests[i].name = cases[i].name;
		tests[i].test_func = run_case;
		tests[i].initial_state = (void *)&cases[i];
	}
	memcpy(tests + NCASES, others, sizeof(others));
	return cmocka_run_group_tests_name("config", tests, group_setup, group_teardown);
}
