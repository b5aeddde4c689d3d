/* Realistic Bot API result objects: the bot user, Message objects for send and edit methods. */
#include "message.h"
#include "files.h"
#include "hmap.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct message_state {
	struct hmap last_id;	/* chat id -> last message_id sent there */
};

struct message_state *
message_new(void)
{
	struct message_state *ms = util_xcalloc(1, sizeof(*ms));

	hmap_init(&ms->last_id);
	return ms;
}

void
message_free(struct message_state *ms)
{
	if (ms == NULL)
		return;
	hmap_free(&ms->last_id);
	free(ms);
}

json_t *
message_bot_user(void)
{
	return json_pack("{s:i,s:b,s:s,s:s}", "id", MESSAGE_BOT_ID, "is_bot", 1,
	    "first_name", "FakeBot", "username", "fake_bot");
}

int
message_handles(const char *method)
{
	return (strncmp(method, "send", 4) == 0 && strcmp(method, "sendChatAction") != 0) ||
	    strncmp(method, "editMessage", 11) == 0 ||
	    strcmp(method, "forwardMessage") == 0 || strcmp(method, "copyMessage") == 0 ||
	    strcmp(method, "forwardMessages") == 0 || strcmp(method, "copyMessages") == 0;
}

/* chat_id as Telegram resolves it: numbers, or "@username" of a channel. */
static json_t *
chat_object(const struct params *p, const char *key, int64_t *id)
{
	char tmp[32];
	const char *s = params_str(p, key, tmp, sizeof(tmp));
	long long v;

	if (s == NULL || *s == '\0')
		return NULL;
	if (s[0] == '@') {
		*id = -1001999999999LL - (int64_t)(util_hash_bytes(s, strlen(s)) % 1000000);
		return json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)*id, "title", s + 1,
		    "username", s + 1, "type", "channel");
	}
	if (util_parse_i64(s, &v) != 0 || v == 0)
		return NULL;
	*id = v;
	if (v > 0)
		return json_pack("{s:I,s:s,s:s}", "id", (json_int_t)v, "first_name", "User",
		    "type", "private");
	snprintf(tmp, sizeof(tmp), "Group %lld", -v);
	return json_pack("{s:I,s:s,s:s}", "id", (json_int_t)v, "title", tmp, "type",
	    v < -1000000000000LL ? "supergroup" : "group");
}

static size_t
utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

static json_t *
base_message(struct app *app, const struct params *p, json_t *chat, int64_t chat_id,
    int new_id)
{
	int64_t *last = hmap_put(&app->msgs->last_id, chat_id, 0);
	json_t *m = json_object(), *v;
	long long mid;

	if (new_id || util_json_int(json_object_get(p->obj, "message_id"), &mid) != 0)
		mid = ++*last;
	json_object_set_new(m, "message_id", json_integer(mid));
	if ((v = json_object_get(p->obj, "message_thread_id")) != NULL &&
	    util_json_int(v, &mid) == 0) {
		json_object_set_new(m, "message_thread_id", json_integer(mid));
		json_object_set_new(m, "is_topic_message", json_true());
	}
	json_object_set_new(m, "from", message_bot_user());
	json_object_set_new(m, "chat", chat);
	json_object_set_new(m, "date", json_integer((json_int_t)time(NULL)));
	return m;
}

static json_t *
file_for(struct app *app, const struct params *p, const char *field, const char *dir,
    struct files_entry **out)
{
	const struct params_file *pf = params_file(p, field);
	const char *s = json_string_value(json_object_get(p->obj, field));
	struct files_entry *e;

	if (pf != NULL)
		e = files_add(app->files, dir, pf->filename, pf->data, pf->size);
	else if (s != NULL && (e = files_find_id(app->files, s)) != NULL)
		;
	else if (s != NULL)
		e = files_add(app->files, dir, NULL, "", 0);
	else
		return NULL;
	*out = e;
	return json_pack("{s:s,s:s,s:I}", "file_id", e->file_id, "file_unique_id",
	    e->unique_id, "file_size", (json_int_t)e->size);
}

/* The media part of send<Media>: photo sizes, document with its name, and so on. */
static int
add_media(struct app *app, const char *method, const struct params *p, json_t *m,
    char *err, size_t errlen)
{
	char field[48], dir[56];
	struct files_entry *e = NULL;
	const struct params_file *pf;
	json_t *f;
	size_t i, j = 0;

	for (i = 4; method[i] && j + 2 < sizeof(field); i++) {
		if (isupper((unsigned char)method[i]) && i > 4)
			field[j++] = '_';
		field[j++] = (char)tolower((unsigned char)method[i]);
	}
	field[j] = '\0';
	snprintf(dir, sizeof(dir), "%ss", field);
	if (json_object_get(p->obj, field) == NULL)
		return 0;	/* sendLocation, sendDice...: no file */
	if ((f = file_for(app, p, field, dir, &e)) == NULL) {
		snprintf(err, errlen, "Bad Request: there is no %s in the request", field);
		return -1;
	}
	if (strcmp(field, "photo") == 0) {
		json_object_set_new(f, "width", json_integer(1280));
		json_object_set_new(f, "height", json_integer(720));
		json_object_set_new(m, "photo", json_pack("[o]", f));
		return 0;
	}
	pf = params_file(p, field);
	if (pf != NULL && pf->filename != NULL) {
		json_t *fn = json_string(pf->filename);

		json_object_set_new(f, "file_name", fn ? fn : json_string("file"));
	}
	json_object_set_new(f, "mime_type", json_string(pf && pf->content_type ?
	    pf->content_type : "application/octet-stream"));
	json_object_set_new(m, field, f);
	return 0;
}

static int
send_like(struct app *app, const char *method, const struct params *p, json_t **result,
    char *err, size_t errlen)
{
	int64_t chat_id = 0;
	json_t *chat = chat_object(p, "chat_id", &chat_id), *m, *v;
	const char *text = json_string_value(json_object_get(p->obj, "text"));
	int edit = strncmp(method, "edit", 4) == 0;

	if (chat == NULL) {
		snprintf(err, errlen, "Bad Request: chat_id is empty");
		return 400;
	}
	if (strcmp(method, "sendMessage") == 0 || strcmp(method, "editMessageText") == 0) {
		if (text == NULL || *text == '\0') {
			json_decref(chat);
			snprintf(err, errlen, "Bad Request: message text is empty");
			return 400;
		}
		if (utf8_chars(text) > 4096) {
			json_decref(chat);
			snprintf(err, errlen, "Bad Request: message is too long");
			return 400;
		}
	}
	if (strcmp(method, "copyMessage") == 0) {
		*result = json_pack("{s:I}", "message_id",
		    (json_int_t)++*hmap_put(&app->msgs->last_id, chat_id, 0));
		json_decref(chat);
		return 200;
	}
	m = base_message(app, p, chat, chat_id, !edit);
	if (edit)
		json_object_set_new(m, "edit_date", json_integer((json_int_t)time(NULL)));
	if (text != NULL)
		json_object_set_new(m, "text", json_string(text));
	if ((v = json_object_get(p->obj, "caption")) != NULL && json_is_string(v))
		json_object_set(m, "caption", v);
	if ((v = json_object_get(p->obj, "reply_markup")) != NULL) {
		json_t *rm = json_is_string(v) ? json_loads(json_string_value(v), 0, NULL) :
		    json_incref(v);

		if (rm != NULL)
			json_object_set_new(m, "reply_markup", rm);
	}
	if (strcmp(method, "forwardMessage") == 0) {
		int64_t from_id = 0;
		json_t *from = chat_object(p, "from_chat_id", &from_id);

		if (from != NULL)
			json_object_set_new(m, "forward_origin", json_pack("{s:s,s:o,s:I}",
			    "type", "chat", "sender_chat", from, "date",
			    (json_int_t)time(NULL)));
	}
	if (strncmp(method, "send", 4) == 0 && add_media(app, method, p, m, err, errlen)) {
		json_decref(m);
		return 400;
	}
	*result = m;
	return 200;
}

int
message_build(struct app *app, const char *method, const struct params *p,
    json_t **result, char *err, size_t errlen)
{
	int code;

	if (strncmp(method, "edit", 4) == 0 &&
	    json_object_get(p->obj, "inline_message_id") != NULL) {
		*result = json_true();
		return 200;
	}
	if (strcmp(method, "forwardMessages") == 0 || strcmp(method, "copyMessages") == 0) {
		int64_t chat_id = 0;
		json_t *chat = chat_object(p, "chat_id", &chat_id), *ids, *arr, *e;
		size_t i;

		if (chat == NULL) {
			snprintf(err, errlen, "Bad Request: chat_id is empty");
			return 400;
		}
		json_decref(chat);
		ids = json_object_get(p->obj, "message_ids");
		ids = json_is_string(ids) ? json_loads(json_string_value(ids), 0, NULL) :
		    json_incref(ids);
		arr = json_array();
		json_array_foreach(ids, i, e)
			json_array_append_new(arr, json_pack("{s:I}", "message_id",
			    (json_int_t)++*hmap_put(&app->msgs->last_id, chat_id, 0)));
		json_decref(ids);
		*result = arr;
		return 200;
	}
	if (strcmp(method, "sendMediaGroup") == 0) {
		json_t *media = json_object_get(p->obj, "media"), *arr, *m;
		size_t n;

		media = json_is_string(media) ? json_loads(json_string_value(media), 0, NULL) :
		    json_incref(media);
		n = json_is_array(media) ? json_array_size(media) : 1;
		json_decref(media);
		arr = json_array();
		for (size_t i = 0; i < (n ? n : 1); i++) {
			if ((code = send_like(app, "sendMessage_", p, &m, err, errlen)) != 200) {
				json_decref(arr);
				return code;
			}
			json_array_append_new(arr, m);
		}
		*result = arr;
		return 200;
	}
	return send_like(app, method, p, result, err, errlen);
}

/* JSON string body of s (valid UTF-8, as jansson checked it) into d; returns the end. */
static char *
escape(char *d, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			*d++ = '\\';
			*d++ = (char)c;
		} else if (c >= 0x20) {
			*d++ = (char)c;
		} else if (c == '\n') {
			*d++ = '\\';
			*d++ = 'n';
		} else if (c == '\t') {
			*d++ = '\\';
			*d++ = 't';
		} else if (c == '\r') {
			*d++ = '\\';
			*d++ = 'r';
		} else {
			memcpy(d, "\\u00", 4);
			d[4] = hex[c >> 4];
			d[5] = hex[c & 15];
			d += 6;
		}
	}
	return d;
}

static char *
put_i64(char *d, long long v)
{
	char tmp[24];
	int n = 0;
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

	if (v < 0)
		*d++ = '-';
	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	while (n)
		*d++ = tmp[--n];
	return d;
}

#define PUT(d, lit) (memcpy((d), (lit), sizeof(lit) - 1), (d) + sizeof(lit) - 1)

int
message_fast_send(struct app *app, const struct params *p, struct evbuffer *out)
{
	json_t *cv = json_object_get(p->obj, "chat_id"), *tv = json_object_get(p->obj, "text");
	json_t *th = json_object_get(p->obj, "message_thread_id");
	const char *text;
	char stackbuf[8192], *buf, *d;
	size_t tlen, need;
	long long chat, thread = 0;
	int64_t *last;

	if (json_object_get(p->obj, "reply_markup") != NULL || !json_is_string(tv) ||
	    util_json_int(cv, &chat) != 0 || chat == 0 ||
	    (th != NULL && util_json_int(th, &thread) != 0))
		return 0;
	text = json_string_value(tv);
	tlen = json_string_length(tv);
	if (tlen == 0 || tlen > 4096 || strlen(text) != tlen)
		return 0;	/* errors, long texts and NULs take the careful path */
	need = 512 + 6 * tlen;
	buf = need <= sizeof(stackbuf) ? stackbuf : util_xmalloc(need);
	last = hmap_put(&app->msgs->last_id, chat, 0);
	d = PUT(buf, "{\"ok\":true,\"result\":{\"message_id\":");
	d = put_i64(d, ++*last);
	if (th != NULL) {
		d = PUT(d, ",\"message_thread_id\":");
		d = put_i64(d, thread);
		d = PUT(d, ",\"is_topic_message\":true");
	}
	d = PUT(d, ",\"from\":{\"id\":123456789,\"is_bot\":true,\"first_name\":\"FakeBot\","
	    "\"username\":\"fake_bot\"},\"chat\":{\"id\":");
	d = put_i64(d, chat);
	if (chat > 0) {
		d = PUT(d, ",\"first_name\":\"User\",\"type\":\"private\"}");
	} else {
		d = PUT(d, ",\"title\":\"Group ");
		d = put_i64(d, -chat);
		if (chat < -1000000000000LL)
			d = PUT(d, "\",\"type\":\"supergroup\"}");
		else
			d = PUT(d, "\",\"type\":\"group\"}");
	}
	d = PUT(d, ",\"date\":");
	d = put_i64(d, (long long)time(NULL));
	d = PUT(d, ",\"text\":\"");
	d = escape(d, text);
	d = PUT(d, "\"}}");
	evbuffer_add(out, buf, (size_t)(d - buf));
	if (buf != stackbuf)
		free(buf);
	return 1;
}
