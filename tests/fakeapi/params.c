/* Request parameters: query string, JSON, urlencoded and multipart bodies as one JSON object. */
#include "params.h"
#include "util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <event2/buffer.h>
#include <sys/queue.h>
#include <event2/keyvalq_struct.h>

static int
add_kv(json_t *obj, const char *k, const char *v, char *err, size_t errlen)
{
	json_t *s = json_string(v);

	if (s == NULL) {
		snprintf(err, errlen, "Bad Request: parameter is not valid UTF-8");
		return -1;
	}
	json_object_set_new(obj, k, s);
	return 0;
}

static int
parse_urlencoded(const char *str, json_t *obj, char *err, size_t errlen)
{
	struct evkeyvalq q;
	struct evkeyval *kv;
	int rc = 0;

	TAILQ_INIT(&q);
	if (evhttp_parse_query_str(str, &q) != 0) {
		snprintf(err, errlen, "Bad Request: malformed query string");
		evhttp_clear_headers(&q);
		return -1;
	}
	TAILQ_FOREACH(kv, &q, next) {
		if ((rc = add_kv(obj, kv->key, kv->value, err, errlen)) != 0)
			break;
	}
	evhttp_clear_headers(&q);
	return rc;
}

/* Value of attribute attr (e.g. name="x") inside a header value, unquoted. */
static char *
header_attr(const char *h, size_t hlen, const char *attr)
{
	size_t alen = strlen(attr);

	for (size_t i = 0; i + alen < hlen; i++) {
		const char *v;
		size_t n = 0;

		if (strncasecmp(h + i, attr, alen) != 0 || h[i + alen] != '=' ||
		    (i > 0 && h[i - 1] != ' ' && h[i - 1] != ';' && h[i - 1] != '\t'))
			continue;
		v = h + i + alen + 1;
		if (v < h + hlen && *v == '"') {
			v++;
			while (v + n < h + hlen && v[n] != '"')
				n++;
		} else {
			while (v + n < h + hlen && v[n] != ';' && v[n] != ' ' &&
			    v[n] != '\r')
				n++;
		}
		return util_xstrndup(v, n);
	}
	return NULL;
}

static void
add_file(struct params *p, char *field, char *filename, char *ctype,
    const char *data, size_t n)
{
	struct params_file *f;
	json_t *desc = json_object(), *fn;

	p->files = util_xrealloc(p->files, (size_t)(p->nfiles + 1) * sizeof(*p->files));
	f = &p->files[p->nfiles++];
	f->field = field;
	f->filename = filename;
	f->content_type = ctype;
	f->data = util_xmalloc(n ? n : 1);
	memcpy(f->data, data, n);
	f->size = n;
	fn = json_string(filename);
	json_object_set_new(desc, "file", fn ? fn : json_string("file"));
	json_object_set_new(desc, "size", json_integer((json_int_t)n));
	json_object_set_new(p->obj, field, desc);
}

static int
parse_multipart(const char *ctype, const char *b, size_t n, struct params *p,
    char *err, size_t errlen)
{
	char *boundary = header_attr(ctype, strlen(ctype), "boundary");
	char delim[256];
	size_t dlen;
	const char *cur, *end = b + n;
	int rc = -1;

	if (boundary == NULL || strlen(boundary) > 200) {
		snprintf(err, errlen, "Bad Request: multipart body without boundary");
		goto out;
	}
	dlen = (size_t)snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
	/* the first delimiter may lack the leading CRLF */
	if (n >= dlen - 2 && memcmp(b, delim + 2, dlen - 2) == 0)
		cur = b + dlen - 2;
	else if ((cur = memmem(b, n, delim, dlen)) != NULL)
		cur += dlen;
	else {
		snprintf(err, errlen, "Bad Request: multipart boundary not found");
		goto out;
	}
	for (;;) {
		const char *hend, *next;
		char *name, *fname, *pctype = NULL;

		if (end - cur >= 2 && cur[0] == '-' && cur[1] == '-') {
			rc = 0;
			break;
		}
		if (end - cur < 2 || cur[0] != '\r' || cur[1] != '\n')
			break;
		cur += 2;
		hend = memmem(cur, (size_t)(end - cur), "\r\n\r\n", 4);
		if (hend == NULL)
			break;
		next = memmem(hend + 4, (size_t)(end - hend - 4), delim, dlen);
		if (next == NULL)
			break;
		name = header_attr(cur, (size_t)(hend - cur), "name");
		fname = header_attr(cur, (size_t)(hend - cur), "filename");
		for (const char *h = cur; h < hend; ) {
			const char *eol = memmem(h, (size_t)(hend - h), "\r\n", 2);

			if (eol == NULL)
				eol = hend;
			if ((size_t)(eol - h) > 13 && strncasecmp(h, "content-type:", 13) == 0) {
				const char *v = h + 13;

				while (v < eol && *v == ' ')
					v++;
				pctype = util_xstrndup(v, (size_t)(eol - v));
			}
			h = eol + 2;
		}
		if (name == NULL) {
			free(fname);
			free(pctype);
		} else if (fname != NULL) {
			add_file(p, name, fname, pctype, hend + 4, (size_t)(next - hend - 4));
		} else {
			json_t *s = json_stringn(hend + 4, (size_t)(next - hend - 4));

			if (s == NULL) {
				snprintf(err, errlen, "Bad Request: field is not valid UTF-8");
				free(name);
				free(pctype);
				goto out;
			}
			json_object_set_new(p->obj, name, s);
			free(name);
			free(pctype);
		}
		cur = next + dlen;
	}
	if (rc != 0)
		snprintf(err, errlen, "Bad Request: malformed multipart body");
out:
	free(boundary);
	return rc;
}

static int
parse_json(const char *b, size_t n, struct params *p, int only, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *j = json_loadb(b, n, 0, &jerr);

	if (j == NULL || !json_is_object(j)) {
		snprintf(err, errlen, "Bad Request: can't parse JSON object");
		json_decref(j);
		return -1;
	}
	if (only) {
		json_decref(p->obj);
		p->obj = j;
		p->raw = b;
		p->raw_len = n;
		return 0;
	}
	json_object_update(p->obj, j);
	json_decref(j);
	return 0;
}

int
params_parse(struct evhttp_request *req, const char *query, struct params *p,
    char *err, size_t errlen)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	const char *ctype = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Content-Type");
	size_t n = evbuffer_get_length(in);
	const char *b;

	memset(p, 0, sizeof(*p));
	p->obj = json_object();
	if (query != NULL && *query != '\0' &&
	    parse_urlencoded(query, p->obj, err, errlen) != 0)
		return -1;
	if (n == 0)
		return 0;
	b = (const char *)evbuffer_pullup(in, -1);
	if (ctype == NULL)
		ctype = "";
	while (*ctype == ' ')
		ctype++;
	if (strncasecmp(ctype, "multipart/form-data", 19) == 0)
		return parse_multipart(ctype, b, n, p, err, errlen);
	if (strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0) {
		char *s = util_xstrndup(b, n);
		int rc = parse_urlencoded(s, p->obj, err, errlen);

		free(s);
		return rc;
	}
	if (strncasecmp(ctype, "application/json", 16) == 0 || b[0] == '{' ||
	    isspace((unsigned char)b[0]))
		return parse_json(b, n, p, json_object_size(p->obj) == 0, err, errlen);
	snprintf(err, errlen, "Bad Request: unsupported Content-Type");
	return -1;
}

void
params_free(struct params *p)
{
	for (int i = 0; i < p->nfiles; i++) {
		free(p->files[i].field);
		free(p->files[i].filename);
		free(p->files[i].content_type);
		free(p->files[i].data);
	}
	free(p->files);
	json_decref(p->obj);
	memset(p, 0, sizeof(*p));
}

const char *
params_str(const struct params *p, const char *key, char *tmp, size_t tmplen)
{
	json_t *v = json_object_get(p->obj, key);

	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v)) {
		snprintf(tmp, tmplen, "%lld", (long long)json_integer_value(v));
		return tmp;
	}
	if (json_is_real(v)) {
		snprintf(tmp, tmplen, "%g", json_real_value(v));
		return tmp;
	}
	if (json_is_boolean(v))
		return json_is_true(v) ? "true" : "false";
	return NULL;
}

const struct params_file *
params_file(const struct params *p, const char *field)
{
	for (int i = 0; i < p->nfiles; i++) {
		if (strcmp(p->files[i].field, field) == 0)
			return &p->files[i];
	}
	return NULL;
}
