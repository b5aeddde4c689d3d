/* Strict, allocation-free JSON scanning over raw bytes (RFC 8259), no DOM. */
#include "jscan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *skip_ws(const char *p, const char *end);
static int special8(const unsigned char *s);
static const char *skip_depth(const char *p, const char *end, int depth,
    int *err);
static int refused(int err);
static const char *scan_string(const char *p, const char *end, int *escaped,
    int *err);
static const unsigned char *scan_escape(const unsigned char *s,
    const unsigned char *e, int *err);
static const unsigned char *scan_utf8(const unsigned char *s,
    const unsigned char *e);
static int hex4(const unsigned char *s, const unsigned char *e, unsigned *cp);
static const char *scan_number(const char *p, const char *end, int *err);
static int int_beyond64(const char *d, size_t n, int neg);
static int real_overflows(const char *ip, const char *ie, const char *fp,
    const char *fe, const char *ep, const char *ee, int eneg);
static const char *scan_literal(const char *p, const char *end,
    const char *lit, size_t n);
static void iter_init(struct jscan_iter *it, const char *p, const char *end,
    int depth);
static const char *unesc_next(const char *k, const char *ke, char out[4],
    int *n);
static const char *skip_trusted(const char *p, const char *end);
static const char *string_end_trusted(const char *p, const char *end);
static int get_path(const char *obj, size_t len, const char *const *path,
    size_t depth, const char **val, size_t *vlen, int trusted);

/* Bytes a string may hold as they are: printable ASCII but '"' and '\\'. */
static const unsigned char plain[256] = {
#define R8(v) v, v, v, v, v, v, v, v
	R8(0), R8(0), R8(0), R8(0),			/* 0x00-0x1f */
	1, 1, 0, 1, 1, 1, 1, 1,				/* 0x20-0x27: '"' */
	R8(1), R8(1), R8(1), R8(1), R8(1), R8(1),	/* 0x28-0x57 */
	1, 1, 1, 1, 0, 1, 1, 1,				/* 0x58-0x5f: '\\' */
	R8(1), R8(1), R8(1), R8(1),			/* 0x60-0x7f */
	/* 0x80-0xff: 0, UTF-8 is checked by scan_utf8() */
#undef R8
};

static int is_ws(char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

const char *jscan_strerror(int err)
{
	switch (err) {
	case 0: return "no error";
	case JSCAN_EBADJSON: return "malformed JSON";
	case JSCAN_EDEPTH: return "nested too deep";
	case JSCAN_ENUL: return "\\u0000 in a string";
	case JSCAN_EINT: return "integer out of 64-bit range";
	case JSCAN_EREAL: return "real number overflows a double";
	default: return "unknown JSON error";
	}
}

int jscan_skip_value(const char *p, const char *end, const char **after)
{
	int err = 0;
	const char *q = skip_depth(p, end, 0, &err);

	if (q == NULL)
		return refused(err);
	*after = q;
	return err;
}

/*
 * What jansson refuses in well-formed text is recorded in *err (the first
 * such construct) and scanning goes on, so the caller still learns where the
 * value ends and that nothing after it is malformed.
 */
static void soft(int *err, int code)
{
	if (*err == 0)
		*err = code;
}

/* The code for a NULL from skip_depth(): only the depth limit says why. */
static int refused(int err)
{
	return err == JSCAN_EDEPTH ? JSCAN_EDEPTH : JSCAN_EBADJSON;
}

/*
 * One value, iteratively: `objs` is a stack of one bit per container opened
 * here (1 = object), `top` its height, `obj` the innermost's bit. `depth`
 * counts the containers already open around p (the caller's nesting). NULL
 * when malformed, *err set to JSCAN_EDEPTH if that is why.
 */
static const char *skip_depth(const char *p, const char *end, int depth,
    int *err)
{
	uint64_t objs[JSCAN_MAX_DEPTH / 64];
	int top = 0, obj = 0;

	p = skip_ws(p, end);
value:
	/* jansson counts the value itself: one inside the limit is refused. */
	if (depth + top >= JSCAN_MAX_DEPTH) {
		*err = JSCAN_EDEPTH;
		return NULL;
	}
	if (p >= end)
		return NULL;
	switch (*p) {
	case '{':
	case '[':
		obj = *p == '{';
		if (obj)
			objs[top >> 6] |= UINT64_C(1) << (top & 63);
		else
			objs[top >> 6] &= ~(UINT64_C(1) << (top & 63));
		top++;
		p = skip_ws(p + 1, end);
		if (p < end && *p == (obj ? '}' : ']')) {
			p++;
			goto pop;
		}
		if (obj)
			goto key;
		goto value;
	case '"':
		p = scan_string(p + 1, end, NULL, err);
		break;
	case 't':
		p = scan_literal(p, end, "true", 4);
		break;
	case 'f':
		p = scan_literal(p, end, "false", 5);
		break;
	case 'n':
		p = scan_literal(p, end, "null", 4);
		break;
	default:
		p = scan_number(p, end, err);
		break;
	}
	if (p == NULL)
		return NULL;
next:
	if (top == 0)
		return p;
	p = skip_ws(p, end);
	if (p >= end)
		return NULL;
	if (*p == ',') {
		p = skip_ws(p + 1, end);
		if (obj)
			goto key;
		goto value;
	}
	if (*p != (obj ? '}' : ']'))
		return NULL;
	p++;
pop:
	top--;
	obj = top > 0 && (objs[(top - 1) >> 6] >> ((top - 1) & 63) & 1);
	goto next;
key:
	if (p >= end || *p != '"')
		return NULL;
	if ((p = scan_string(p + 1, end, NULL, err)) == NULL)
		return NULL;
	p = skip_ws(p, end);
	if (p >= end || *p != ':')
		return NULL;
	p = skip_ws(p + 1, end);
	goto value;
}

int jscan_result_array(const char *body, size_t len, int *ok, jscan_item_fn cb,
    void *arg)
{
	const char *end = body + len, *okv = NULL, *res = NULL, *p, *q;
	struct jscan_iter it;
	struct jscan_member m;
	int rc, res_err = 0, other_err = 0, err;

	*ok = 0;
	if (jscan_object_begin(&it, body, len) != 0)
		return JSCAN_EBADJSON;
	/*
	 * Validate everything first: no callback for a body we then refuse.
	 * What jansson refuses counts against the body unless it lies inside
	 * the elements of the "result" that wins; those are judged one by one.
	 */
	while ((rc = jscan_object_next(&it, &m)) != 0) {
		if (!JSCAN_WELLFORMED(rc))
			return rc;
		err = rc < 0 ? rc : 0;
		if (jscan_key_eq(&m, "result")) {
			if (other_err == 0)
				other_err = res_err;
			res = m.val;
			res_err = err;
			continue;
		}
		if (other_err == 0)
			other_err = err;
		if (jscan_key_eq(&m, "ok"))
			okv = m.val;
	}
	if (skip_ws(it.p, end) != end || okv == NULL ||
	    (*okv != 't' && *okv != 'f'))
		return JSCAN_EBADJSON;
	*ok = *okv == 't';
	if (!*ok || res == NULL || *res != '[' || cb == NULL)
		return other_err != 0 ? other_err : res_err;
	if (other_err != 0)
		return other_err;

	p = skip_ws(res + 1, end);
	if (*p == ']')
		return 0;
	for (;;) {
		/* Re-scan the elements only when one of them has a flaw. */
		err = 0;
		if (res_err == 0)
			q = skip_trusted(p, end);
		else if ((q = skip_depth(p, end, 2, &err)) == NULL)
			return JSCAN_EBADJSON;	/* validated above: cannot happen */
		if ((rc = cb(arg, p, (size_t)(q - p), err)) != 0)
			return rc;
		p = skip_ws(q, end);
		if (*p == ']')
			return 0;
		p = skip_ws(p + 1, end);	/* the ',' */
	}
}

int jscan_object_begin(struct jscan_iter *it, const char *obj, size_t len)
{
	const char *end = obj + len, *p = skip_ws(obj, end);

	if (p >= end || *p != '{')
		return -1;
	iter_init(it, p + 1, end, 1);
	return 0;
}

int jscan_object_next(struct jscan_iter *it, struct jscan_member *m)
{
	const char *p = skip_ws(it->p, it->end), *end = it->end, *q;
	int err = 0;

	if (it->first == 2)
		return 0;
	if (p >= end)
		return JSCAN_EBADJSON;
	if (*p == '}') {
		it->p = p + 1;
		it->first = 2;
		return 0;
	}
	if (it->first != 1) {
		if (*p != ',')
			return JSCAN_EBADJSON;
		p = skip_ws(p + 1, end);
	}
	if (p >= end || *p != '"')
		return JSCAN_EBADJSON;
	m->key = p + 1;
	if (it->trusted) {
		if ((q = string_end_trusted(p + 1, end)) == NULL)
			return JSCAN_EBADJSON;
		m->key_escaped = memchr(m->key, '\\', (size_t)(q - 1 - m->key)) != NULL;
	} else if ((q = scan_string(p + 1, end, &m->key_escaped, &err)) == NULL) {
		return JSCAN_EBADJSON;
	}
	m->klen = (size_t)(q - 1 - m->key);
	p = skip_ws(q, end);
	if (p >= end || *p != ':')
		return JSCAN_EBADJSON;
	m->val = p = skip_ws(p + 1, end);
	q = it->trusted ? skip_trusted(p, end) : skip_depth(p, end, it->depth, &err);
	if (q == NULL)
		return refused(err);
	m->vlen = (size_t)(q - p);
	it->p = q;
	it->first = 0;
	return err != 0 ? err : 1;
}

int jscan_key_eq(const struct jscan_member *m, const char *name)
{
	const char *k = m->key, *ke = m->key + m->klen;
	char c[4];
	int n;

	if (!m->key_escaped)
		return strlen(name) == m->klen && memcmp(name, k, m->klen) == 0;
	while (k < ke) {
		k = unesc_next(k, ke, c, &n);
		/* name ends at its NUL, which an unescaped byte never matches. */
		if (strncmp(name, c, (size_t)n) != 0 || memchr(c, 0, (size_t)n))
			return 0;
		name += n;
	}
	return *name == '\0';
}

int jscan_key_copy(const struct jscan_member *m, char *buf, size_t size)
{
	const char *k = m->key, *ke = m->key + m->klen;
	size_t len = 0;
	char c[4];
	int n;

	while (k < ke) {
		k = unesc_next(k, ke, c, &n);
		if (len + (size_t)n >= size || memchr(c, 0, (size_t)n))
			return -1;
		memcpy(buf + len, c, (size_t)n);
		len += (size_t)n;
	}
	if (size == 0)
		return -1;
	buf[len] = '\0';
	return (int)len;
}

int jscan_get(const char *obj, size_t len, const char *const *path,
    size_t depth, const char **val, size_t *vlen)
{
	return get_path(obj, len, path, depth, val, vlen, 0);
}

int jscan_get_valid(const char *obj, size_t len, const char *const *path,
    size_t depth, const char **val, size_t *vlen)
{
	return get_path(obj, len, path, depth, val, vlen, 1);
}

static int get_path(const char *obj, size_t len, const char *const *path,
    size_t depth, const char **val, size_t *vlen, int trusted)
{
	const char *p = skip_ws(obj, obj + len), *end = obj + len, *q;
	struct jscan_iter it;
	struct jscan_member m;
	size_t i;
	int rc, err = 0;

	/* Not an object: absent if it is a valid value, else refused. */
	if (p >= end || *p != '{' || depth == 0) {
		if ((q = skip_depth(p, end, 0, &err)) == NULL)
			return refused(err);
		if (err != 0)
			return err;
		if (depth > 0)
			return 0;
		*val = p;
		*vlen = (size_t)(q - p);
		return 1;
	}
	for (i = 0; i < depth; i++) {
		const char *found = NULL;
		size_t flen = 0;

		/* Values below the top were validated by their parent's scan. */
		if (p >= end || *p != '{')
			return 0;
		iter_init(&it, p + 1, end, (int)i + 1);
		it.trusted = trusted;
		while ((rc = jscan_object_next(&it, &m)) == 1)
			if (jscan_key_eq(&m, path[i])) {
				found = m.val;
				flen = m.vlen;
			}
		if (rc < 0)
			return rc;
		if (found == NULL)
			return 0;
		p = found;
		end = found + flen;
	}
	*val = p;
	*vlen = (size_t)(end - p);
	return 1;
}

int jscan_int64(const char *val, size_t vlen, int64_t *out)
{
	const char *p = val, *end = val + vlen;
	uint64_t v = 0, lim = INT64_MAX;
	int neg = 0;

	if (p < end && *p == '-') {
		neg = 1;
		lim = (uint64_t)INT64_MAX + 1;
		p++;
	}
	if (p >= end || !is_digit(*p) || (*p == '0' && end - p > 1))
		return -1;
	for (; p < end; p++) {
		if (!is_digit(*p))
			return -1;
		if (v > (lim - (uint64_t)(*p - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	/* -(2^63) has no positive int64 counterpart: negate in unsigned. */
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

int jscan_first_key(const char *obj, size_t len, const char *skip_key,
    jscan_key_fn accept, void *arg, char *buf, size_t size)
{
	struct jscan_iter it;
	struct jscan_member m;
	int rc;

	if (jscan_object_begin(&it, obj, len) != 0)
		return JSCAN_EBADJSON;
	while ((rc = jscan_object_next(&it, &m)) == 1) {
		if (jscan_key_copy(&m, buf, size) < 0)
			continue;
		if (skip_key != NULL && strcmp(buf, skip_key) == 0)
			continue;
		if (accept == NULL || accept(arg, buf))
			return 1;
	}
	return rc;
}

static void iter_init(struct jscan_iter *it, const char *p, const char *end,
    int depth)
{
	it->p = p;
	it->end = end;
	it->first = 1;
	it->depth = depth;
	it->trusted = 0;
}

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && is_ws(*p))
		p++;
	return p;
}

/* p is just past the opening quote; returns just past the closing one. */
static const char *scan_string(const char *p, const char *end, int *escaped,
    int *err)
{
	const unsigned char *s = (const unsigned char *)p;
	const unsigned char *e = (const unsigned char *)end;
	int esc = 0;

	for (;;) {
		/* Eight plain ASCII bytes at a time, then byte by byte. */
		while (e - s >= 8 && !special8(s))
			s += 8;
		while (s < e && plain[*s])
			s++;
		if (s >= e)
			return NULL;
		if (*s == '"')
			break;
		/* Inline the common sequences: 2-byte, and 3-byte but E0/ED. */
		if (*s >= 0xc2 && *s <= 0xdf && e - s > 1 && (s[1] & 0xc0) == 0x80) {
			s += 2;
			continue;
		}
		if (*s >= 0xe1 && *s <= 0xef && *s != 0xed && e - s > 2 &&
		    (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80) {
			s += 3;
			continue;
		}
		if (*s == '\\') {
			esc = 1;
			s = scan_escape(s + 1, e, err);
		} else if (*s < 0x20) {
			return NULL;
		} else {
			s = scan_utf8(s, e);
		}
		if (s == NULL)
			return NULL;
	}
	if (escaped != NULL)
		*escaped = esc;
	return (const char *)s + 1;
}

/* s is just past the backslash. Lone or reversed surrogates are refused. */
static const unsigned char *scan_escape(const unsigned char *s,
    const unsigned char *e, int *err)
{
	unsigned cp, lo;

	if (s >= e)
		return NULL;
	switch (*s) {
	case '"': case '\\': case '/': case 'b':
	case 'f': case 'n': case 'r': case 't':
		return s + 1;
	case 'u':
		break;
	default:
		return NULL;
	}
	if (hex4(s + 1, e, &cp) != 0)
		return NULL;
	s += 5;
	if (cp == 0)
		soft(err, JSCAN_ENUL);	/* jansson: only with JSON_ALLOW_NUL */
	if (cp >= 0xdc00 && cp <= 0xdfff)
		return NULL;
	if (cp < 0xd800 || cp > 0xdbff)
		return s;
	if (e - s < 6 || s[0] != '\\' || s[1] != 'u' || hex4(s + 2, e, &lo) != 0 ||
	    lo < 0xdc00 || lo > 0xdfff)
		return NULL;
	return s + 6;
}

/* One multi-byte UTF-8 sequence, the well-formed table of Unicode 3.9. */
static const unsigned char *scan_utf8(const unsigned char *s,
    const unsigned char *e)
{
	unsigned char lo = 0x80, hi = 0xbf;
	int n, i;

	if (*s >= 0xc2 && *s <= 0xdf)
		n = 1;
	else if (*s >= 0xe0 && *s <= 0xef)
		n = 2;
	else if (*s >= 0xf0 && *s <= 0xf4)
		n = 3;
	else
		return NULL;
	if (*s == 0xe0)
		lo = 0xa0;
	else if (*s == 0xed)
		hi = 0x9f;
	else if (*s == 0xf0)
		lo = 0x90;
	else if (*s == 0xf4)
		hi = 0x8f;
	if (e - s <= n || s[1] < lo || s[1] > hi)
		return NULL;
	for (i = 2; i <= n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return NULL;
	return s + n + 1;
}

static int hex4(const unsigned char *s, const unsigned char *e, unsigned *cp)
{
	unsigned v = 0;
	int i;

	if (e - s < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		unsigned char c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			v |= (unsigned)((c | 0x20) - 'a' + 10);
		else
			return -1;
	}
	*cp = v;
	return 0;
}

/*
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, and the ranges jansson
 * keeps: an integer (no fraction, no exponent) must fit int64_t (strtoll),
 * a real must not overflow a double (strtod).
 */
static const char *scan_number(const char *p, const char *end, int *err)
{
	const char *ip, *ie, *fp = NULL, *fe = NULL, *ep = NULL;
	int neg = 0, eneg = 0;

	if (p < end && *p == '-') {
		neg = 1;
		p++;
	}
	if (p >= end || !is_digit(*p))
		return NULL;
	ip = p;
	if (*p++ != '0')
		while (p < end && is_digit(*p))
			p++;
	ie = p;
	if (p < end && *p == '.') {
		if (++p >= end || !is_digit(*p))
			return NULL;
		fp = p;
		while (p < end && is_digit(*p))
			p++;
		fe = p;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		if (++p < end && (*p == '+' || *p == '-'))
			eneg = *p++ == '-';
		if (p >= end || !is_digit(*p))
			return NULL;
		ep = p;
		while (p < end && is_digit(*p))
			p++;
	}
	if (fp == NULL && ep == NULL) {
		if (ie - ip >= 19 && int_beyond64(ip, (size_t)(ie - ip), neg))
			soft(err, JSCAN_EINT);
	} else if (real_overflows(ip, ie, fp, fe, ep, ep ? p : NULL, eneg)) {
		soft(err, JSCAN_EREAL);
	}
	return p;
}

/* The digits d[0..n), without leading zeros, beyond int64_t with that sign? */
static int int_beyond64(const char *d, size_t n, int neg)
{
	if (n != 19)
		return n > 19;
	return memcmp(d, neg ? "9223372036854775808" : "9223372036854775807",
	    19) > 0;
}

/*
 * Does strtod() overflow on this number? Digits ip..ie, fraction fp..fe and
 * exponent digits ep..ee (NULL when absent). Only the power of ten of the
 * first significant digit matters, but near DBL_MAX (1.79e308) strtod()
 * rounds: there it is given the first REAL_DIGITS significant digits. The
 * limit, DBL_MAX plus half an ulp (2^1024 - 2^970), is an integer of 309
 * digits, so digits past the 400th cannot move a number across it.
 */
#define REAL_DIGITS 400
static int real_overflows(const char *ip, const char *ie, const char *fp,
    const char *fe, const char *ep, const char *ee, int eneg)
{
	char buf[REAL_DIGITS + 16];
	const char *d;
	long long e10, ex = 0;
	size_t n = 0;

	for (d = ip; d < ie && *d == '0'; d++)
		;
	if (d < ie) {
		e10 = (long long)(ie - d) - 1;
	} else {
		for (d = fp; d != NULL && d < fe && *d == '0'; d++)
			;
		if (d == NULL || d >= fe)
			return 0;		/* zero */
		e10 = -(long long)(d - fp) - 1;
	}
	/* Saturate far beyond any digit count a body can hold. */
	for (; ep != NULL && ep < ee; ep++)
		if (ex < 1000000000000000LL)
			ex = ex * 10 + (*ep - '0');
	e10 += eneg ? -ex : ex;
	if (e10 != 308)
		return e10 > 308;
	for (; d < ie && n < REAL_DIGITS; d++)
		buf[n++] = *d;
	if (d >= ie && fp != NULL)
		for (d = d < fp ? fp : d; d < fe && n < REAL_DIGITS; d++)
			buf[n++] = *d;
	/* No decimal point, so the locale does not matter. */
	snprintf(buf + n, sizeof(buf) - n, "e%d", 308 - (int)(n - 1));
	return strtod(buf, NULL) == HUGE_VAL;
}

static const char *scan_literal(const char *p, const char *end,
    const char *lit, size_t n)
{
	if ((size_t)(end - p) < n || memcmp(p, lit, n) != 0)
		return NULL;
	return p + n;
}

/*
 * The next character of a validated key, unescaped into out[0..*n). Keys
 * reaching here passed scan_string(), so escapes are complete and surrogates
 * paired.
 */
static const char *unesc_next(const char *k, const char *ke, char out[4],
    int *n)
{
	const unsigned char *s = (const unsigned char *)k;
	unsigned cp, lo;

	if (*s != '\\') {
		out[0] = (char)*s;
		*n = 1;
		return k + 1;
	}
	switch (s[1]) {
	case 'b': out[0] = '\b'; break;
	case 'f': out[0] = '\f'; break;
	case 'n': out[0] = '\n'; break;
	case 'r': out[0] = '\r'; break;
	case 't': out[0] = '\t'; break;
	case 'u': goto unicode;
	default: out[0] = (char)s[1]; break;	/* '"', '\\', '/' */
	}
	*n = 1;
	return k + 2;
unicode:
	(void)hex4(s + 2, (const unsigned char *)ke, &cp);
	k += 6;
	if (cp >= 0xd800 && cp <= 0xdbff) {
		(void)hex4(s + 8, (const unsigned char *)ke, &lo);
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		k += 6;
	}
	if (cp < 0x80) {
		out[0] = (char)cp;
		*n = 1;
	} else if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		*n = 2;
	} else if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		*n = 3;
	} else {
		out[0] = (char)(0xf0 | (cp >> 18));
		out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[3] = (char)(0x80 | (cp & 0x3f));
		*n = 4;
	}
	return k;
}

/* The end of a value already validated: only strings and brackets matter. */
static const char *skip_trusted(const char *p, const char *end)
{
	int depth = 0;

	do {
		if (p >= end)
			return end;
		switch (*p) {
		case '"':
			if ((p = string_end_trusted(p + 1, end)) == NULL)
				return end;
			break;
		case '{':
		case '[':
			depth++;
			p++;
			break;
		case '}':
		case ']':
			depth--;
			p++;
			break;
		default:
			if (depth == 0) {	/* a bare scalar */
				while (p < end && !is_ws(*p) && *p != ',' &&
				    *p != ']' && *p != '}')
					p++;
				return p;
			}
			p++;
			break;
		}
	} while (depth > 0);
	return p;
}

/* Just past the closing quote of a valid string starting at p; NULL if none. */
static const char *string_end_trusted(const char *p, const char *end)
{
	const char *q, *b;

	for (;; p = q + 1) {
		if ((q = memchr(p, '"', (size_t)(end - p))) == NULL)
			return NULL;
		for (b = q; b > p && b[-1] == '\\'; b--)
			;
		/* An even run of backslashes escapes itself, not the quote. */
		if (((q - b) & 1) == 0)
			return q + 1;
	}
}

/*
 * Does s[0..8) hold a byte a string cannot take as it is: '"', '\\', a
 * control character or a non-ASCII byte? The usual has-zero-byte tricks.
 */
static int special8(const unsigned char *s)
{
	const uint64_t ones = 0x0101010101010101ULL, high = ones * 0x80;
	uint64_t x, q, b;

	memcpy(&x, s, 8);
	q = x ^ (ones * '"');
	b = x ^ (ones * '\\');
	return ((((x - ones * 0x20) & ~x) | ((q - ones) & ~q) |
	    ((b - ones) & ~b) | x) & high) != 0;
}
