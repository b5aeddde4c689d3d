/* Deterministic generator of realistic update streams (messages, edits, callbacks...). */
#include "gen.h"
#include "message.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define USER_BASE 100000LL
#define GROUP_BASE -1001000000000LL

struct gen {
	const struct gen_opts *o;
	struct util_rng rng;
	long ngroups;
	int64_t *msg_id;	/* per chat: last message_id */
	time_t now;
	uint64_t serial;
	char *long_text;
};

static const char *const texts[] = {
	"hello", "ping", "/start", "/help", "What is the weather today?",
	"ok thanks", "Can you send me the report by Friday?", "lol",
	"Привет! Как дела?", "Спасибо большое, всё работает",
	"你好，世界", "こんにちは、元気ですか？", "안녕하세요",
	"👍🔥😂 nice one", "🎉🎉🎉", "Ünïcödé façade naïve café",
	"مرحبا بالعالم", "שלום עולם", "Mixed: hello мир 世界 🌍 مرحبا",
};
#define NTEXTS (sizeof(texts) / sizeof(texts[0]))

static const char *const first_names[] = {
	"Alice", "Bob", "Иван", "Мария", "李", "Yuki", "Ahmed", "Noa", "Carlos", "Zoë",
};
static const char *const langs[] = { "en", "ru", "zh", "ja", "ar", "he", "es", "de" };
static const char *const mix_names[GEN_NTYPES] = {
	"message", "edited_message", "callback_query", "inline_query", "my_chat_member",
	"poll",
};

void
gen_defaults(struct gen_opts *o)
{
	static const double dflt[GEN_NTYPES] = { 70, 8, 8, 5, 4, 5 };

	memset(o, 0, sizeof(*o));
	o->chats = 10;
	o->users = 10;
	o->group_fraction = 0.3;
	o->seed = 1;
	memcpy(o->mix, dflt, sizeof(dflt));
}

int
gen_parse_mix(const char *spec, double mix[GEN_NTYPES], char *err, size_t errlen)
{
	char *copy = strdup(spec), *tok, *save = NULL;
	double sum = 0, w[GEN_NTYPES] = { 0 };
	int rc = 0;

	if (copy == NULL)
		return -1;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		int t;

		if (eq == NULL) {
			snprintf(err, errlen, "mix item '%s' is not type=weight", tok);
			rc = -1;
			break;
		}
		*eq = '\0';
		for (t = 0; t < GEN_NTYPES && strcmp(tok, mix_names[t]) != 0; t++)
			;
		if (t == GEN_NTYPES) {
			snprintf(err, errlen, "mix type '%s' is not one of message, "
			    "edited_message, callback_query, inline_query, my_chat_member, "
			    "poll", tok);
			rc = -1;
			break;
		}
		if (util_parse_double(eq + 1, &w[t]) != 0 || w[t] < 0) {
			snprintf(err, errlen, "mix weight for %s is not a number >= 0", tok);
			rc = -1;
			break;
		}
		sum += w[t];
	}
	free(copy);
	if (rc == 0 && sum <= 0) {
		snprintf(err, errlen, "mix has no positive weight");
		rc = -1;
	}
	if (rc == 0)
		memcpy(mix, w, sizeof(w));
	return rc;
}

int
gen_opts_from_json(const json_t *obj, struct gen_opts *o, char *err, size_t errlen)
{
	double d;
	json_t *v;

	if (!json_is_object(obj)) {
		snprintf(err, errlen, "generate must be an object");
		return -1;
	}
#define NUM(key, field, lo, hi) do {						\
	if ((v = json_object_get(obj, key)) != NULL) {				\
		if (util_json_number(v, &d) != 0 || d < (lo) || d > (hi)) {	\
			snprintf(err, errlen, "generate: bad " key);		\
			return -1;						\
		}								\
		o->field = d;							\
	}									\
} while (0)
	NUM("count", count, 0, 10000000);
	NUM("chats", chats, 1, 10000000);
	NUM("users", users, 1, 10000000);
	NUM("group_fraction", group_fraction, 0, 1);
	NUM("seed", seed, 0, 1e18);
#undef NUM
	if ((v = json_object_get(obj, "mix")) != NULL) {
		if (!json_is_string(v) ||
		    gen_parse_mix(json_string_value(v), o->mix, err, errlen) != 0) {
			if (!json_is_string(v))
				snprintf(err, errlen, "generate: mix must be a string");
			return -1;
		}
	}
	return 0;
}

static json_t *
user(struct gen *g, long u)
{
	char uname[32];

	snprintf(uname, sizeof(uname), "user%ld", u);
	return json_pack("{s:I,s:b,s:s,s:s,s:s}", "id", (json_int_t)(USER_BASE + u),
	    "is_bot", 0, "first_name", first_names[u % 10], "username", uname,
	    "language_code", langs[u % 8]);
}

static json_t *
chat(struct gen *g, long c)
{
	char title[48];

	if (c >= g->ngroups)
		return json_pack("{s:I,s:s,s:s}", "id", (json_int_t)(USER_BASE + c),
		    "first_name", first_names[c % 10], "type", "private");
	snprintf(title, sizeof(title), "Test group %ld", c);
	return json_pack("{s:I,s:s,s:s,s:b}", "id", (json_int_t)(GROUP_BASE - c),
	    "title", title, "type", "supergroup", "is_forum", c % 3 == 2);
}

static const char *
text(struct gen *g)
{
	if (util_rng_below(&g->rng, 100) < 3)
		return g->long_text;
	return texts[util_rng_below(&g->rng, NTEXTS)];
}

/* A message in chat c from user u: shared by message, edited_message, callbacks. */
static json_t *
message(struct gen *g, long c, long u, int64_t message_id, const char *t, int from_bot)
{
	json_t *m = json_object();

	json_object_set_new(m, "message_id", json_integer(message_id));
	json_object_set_new(m, "from", from_bot ? message_bot_user() : user(g, u));
	json_object_set_new(m, "chat", chat(g, c));
	json_object_set_new(m, "date", json_integer((json_int_t)g->now));
	if (c < g->ngroups && c % 3 == 2 && util_rng_below(&g->rng, 2)) {
		json_object_set_new(m, "message_thread_id",
		    json_integer((json_int_t)(1 + util_rng_below(&g->rng, 4))));
		json_object_set_new(m, "is_topic_message", json_true());
	}
	json_object_set_new(m, "text", json_string(t));
	if (t[0] == '/')
		json_object_set_new(m, "entities", json_pack("[{s:i,s:I,s:s}]", "offset", 0,
		    "length", (json_int_t)strlen(t), "type", "bot_command"));
	return m;
}

static json_t *
member(const char *status)
{
	return json_pack("{s:s,s:o}", "status", status, "user", message_bot_user());
}

static json_t *
make(struct gen *g, int type)
{
	long c = (long)util_rng_below(&g->rng, (uint64_t)g->o->chats);
	long u = c >= g->ngroups ? c : (long)util_rng_below(&g->rng, (uint64_t)g->o->users);
	char id[32];
	json_t *m;

	snprintf(id, sizeof(id), "%llu", 4100000000000000000ULL +
	    (unsigned long long)(g->serial++) * 1000 + util_rng_below(&g->rng, 1000));
	switch (type) {
	case STREAM_TYPE_MESSAGE:
		return json_pack("{s:o}", "message",
		    message(g, c, u, ++g->msg_id[c], text(g), 0));
	case STREAM_TYPE_EDITED_MESSAGE:
		m = message(g, c, u, g->msg_id[c] ? 1 + (int64_t)util_rng_below(&g->rng,
		    (uint64_t)g->msg_id[c]) : ++g->msg_id[c], text(g), 0);
		json_object_set_new(m, "edit_date", json_integer((json_int_t)g->now));
		return json_pack("{s:o}", "edited_message", m);
	case STREAM_TYPE_CALLBACK_QUERY:
		return json_pack("{s:{s:s,s:o,s:o,s:s,s:s}}", "callback_query", "id", id,
		    "from", user(g, u), "message", message(g, c, u, ++g->msg_id[c],
		    "Choose an option:", 1), "chat_instance", id + 4, "data",
		    util_rng_below(&g->rng, 2) ? "btn:yes" : "btn:no");
	case STREAM_TYPE_INLINE_QUERY:
		return json_pack("{s:{s:s,s:o,s:s,s:s,s:s}}", "inline_query", "id", id,
		    "from", user(g, u), "query", text(g), "offset", "", "chat_type",
		    c >= g->ngroups ? "private" : "supergroup");
	case STREAM_TYPE_MY_CHAT_MEMBER:
		return json_pack("{s:{s:o,s:o,s:I,s:o,s:o}}", "my_chat_member", "chat",
		    chat(g, c), "from", user(g, u), "date", (json_int_t)g->now,
		    "old_chat_member", member(c >= g->ngroups ? "member" : "left"),
		    "new_chat_member", member(c >= g->ngroups ? "kicked" : "administrator"));
	default:
		return json_pack("{s:{s:s,s:s,s:[{s:s,s:i},{s:s,s:i}],s:i,s:b,s:b,s:s,s:b}}",
		    "poll", "id", id, "question", "Lunch? 🍕 / Обед?", "options", "text",
		    "Yes", "voter_count", 3, "text", "Нет", "voter_count", 1,
		    "total_voter_count", 4, "is_closed", 0, "is_anonymous", 1, "type",
		    "regular", "allows_multiple_answers", 0);
	}
}

static char *
make_long_text(void)
{
	static const char piece[] = "Long text line, длинный текст, 長いテキスト 📜. ";
	size_t plen = strlen(piece), chars = 0, n = 0, per = 0;
	char *s = util_xmalloc(16384);

	for (const char *c = piece; *c; c++)
		per += ((unsigned char)*c & 0xc0) != 0x80;
	while (chars + per <= 4000) {
		memcpy(s + n, piece, plen);
		n += plen;
		chars += per;
	}
	s[n] = '\0';
	return s;
}

int
gen_run(struct stream *s, const struct gen_opts *o, char *err, size_t errlen)
{
	struct gen g;
	double sum = 0;
	int rc = 0;

	memset(&g, 0, sizeof(g));
	g.o = o;
	util_rng_seed(&g.rng, o->seed);
	g.ngroups = lround(o->group_fraction * (double)o->chats);
	g.msg_id = util_xcalloc((size_t)o->chats, sizeof(*g.msg_id));
	g.now = time(NULL);
	g.long_text = make_long_text();
	for (int t = 0; t < GEN_NTYPES; t++)
		sum += o->mix[t];
	for (long i = 0; i < o->count && rc == 0; i++) {
		double r = util_rng_unit(&g.rng) * sum;
		int t = 0;
		json_t *u;

		while (t < GEN_NTYPES - 1 && (r >= o->mix[t] || o->mix[t] <= 0)) {
			r -= o->mix[t];
			t++;
		}
		u = make(&g, t);
		if (stream_add(s, u, err, errlen) < 0)
			rc = -1;
		json_decref(u);
	}
	free(g.long_text);
	free(g.msg_id);
	return rc;
}
