/* Strict, allocation-free JSON scanning over raw bytes (RFC 8259), no DOM. */
#ifndef TGRUN_JSCAN_H
#define TGRUN_JSCAN_H

#include <stddef.h>
#include <stdint.h>

/*
 * What "valid" means here, everywhere in this module: exactly what jansson's
 * json_loadb(..., 0, ...) accepts, which is what a worker decodes an update
 * with, so bytes we pass on always load there.
 * - RFC 8259 grammar; whitespace is space, \t, \n, \r only.
 * - Strings are well-formed UTF-8 (no overlongs, no UTF-8-encoded surrogates,
 *   nothing above U+10FFFF), no raw bytes below 0x20, escapes are the eight
 *   RFC ones plus \uXXXX; a \u high surrogate must be followed by a \u low
 *   surrogate and a low one must not stand alone.
 * - Numbers per the grammar (no leading zeros, no "1.", "1e", "+1", ".5").
 * - No value nested inside JSCAN_MAX_DEPTH containers.
 * - And what RFC 8259 allows but jansson refuses, each with its own code
 *   (below): "\u0000" in a string or key, an integer (no fraction, no
 *   exponent) outside int64_t, a real whose magnitude overflows a double
 *   ("1e400"; an underflow such as "1e-400" is fine, it loads as 0).
 * Inputs are (pointer, length); NUL bytes are ordinary bytes (invalid outside
 * strings, invalid raw inside them). jansson's lexer skips a NUL byte right
 * after a number or a literal ("[1\0]" loads): that is not JSON, and the
 * worker refuses any NUL byte before it calls jansson (worker/main.c), so
 * the two still agree. Nothing is allocated, nothing is written outside the
 * caller's out-parameters.
 */

/*
 * Why bytes were refused. Functions that validate return one of these
 * (all negative) where their description says "refused".
 *
 * JSCAN_EBADJSON and JSCAN_EDEPTH mean the text is not well-formed: nothing
 * after the fault was looked at and no value boundaries are known.
 *
 * JSCAN_ENUL, JSCAN_EINT and JSCAN_EREAL mean the text is well-formed JSON
 * (RFC 8259, depth within bounds) that jansson would still refuse: the whole
 * text was checked, its structure is sound, and the code names the first
 * such construct met. JSCAN_WELLFORMED(rc) tells these and success (any
 * rc >= 0) from the two above: "this item cannot be decoded" as against
 * "the answer is garbage".
 */
enum jscan_err {
	JSCAN_EBADJSON = -1,	/* not JSON (grammar, UTF-8, escapes, trailing bytes) */
	JSCAN_EDEPTH = -2,	/* a value inside JSCAN_MAX_DEPTH containers */
	JSCAN_ENUL = -3,	/* "\u0000" in a string or an object key */
	JSCAN_EINT = -4,	/* an integer outside int64_t */
	JSCAN_EREAL = -5,	/* a real that overflows a double */
};
#define JSCAN_WELLFORMED(rc) ((rc) >= 0 || (rc) <= JSCAN_ENUL)

/* A short English phrase for a JSCAN_E* code ("\\u0000 in a string"). */
const char *jscan_strerror(int err);

/*
 * jansson's JSON_PARSER_MAX_DEPTH, counted its way: a value inside this many
 * containers is refused, so 2048 nested containers are fine if the innermost
 * is empty.
 */
#define JSCAN_MAX_DEPTH 2048

/*
 * Validate one JSON value starting at p (leading whitespace allowed) and set
 * *after just past it (trailing whitespace not consumed). 0, or refused:
 * JSCAN_EBADJSON or JSCAN_EDEPTH when the bytes up to `end` do not start with
 * a well-formed value (*after untouched), JSCAN_ENUL, JSCAN_EINT or
 * JSCAN_EREAL when they do but jansson would refuse it (*after is set).
 */
int jscan_skip_value(const char *p, const char *end, const char **after)
    __attribute__((warn_unused_result));

/*
 * Called with the exact bytes of one result element, without whitespace, and
 * 0 when jansson loads that element, else JSCAN_ENUL, JSCAN_EINT or
 * JSCAN_EREAL: the element is well-formed (its boundaries, keys and
 * jscan_*_valid() walks are sound) but a worker could never decode it.
 */
typedef int (*jscan_item_fn)(void *arg, const char *elem, size_t len, int err);

/*
 * A Bot API answer {"ok":...,"result":...}: validate the whole body (one
 * object, whitespace around it, nothing else), set *ok to 1 or 0 from the
 * boolean "ok", and when ok is true and "result" is an array, call cb for
 * each element in order (cb NULL: validate only). Keys come in any order
 * and may be written with escapes; unknown keys are skipped.
 *
 * Duplicate keys: the last one wins, as with jansson's json_loads. cb runs
 * only after the whole body validated, once per element of that last "result".
 *
 * Returns 0 for a valid body: also when ok is false (the caller reads
 * error_code/description itself) and when "result" is absent or not an array
 * (cb is then not called). An element jansson refuses does not make the body
 * refused: cb gets it with its code, so one bad update can be set aside while
 * its neighbours run. Refused:
 * - JSCAN_EBADJSON when the body is not well-formed, is not an object, or
 *   "ok" is missing or not a boolean; JSCAN_EDEPTH when nested too deep;
 * - JSCAN_ENUL, JSCAN_EINT or JSCAN_EREAL when the body is well-formed and
 *   a construct jansson refuses lies outside the elements cb would get
 *   (another member, an earlier duplicate "result", or anywhere when cb is
 *   NULL or not called); *ok is set then.
 * When cb returns non-zero, the walk stops and that value is returned.
 */
int jscan_result_array(const char *body, size_t len, int *ok, jscan_item_fn cb,
    void *arg) __attribute__((warn_unused_result));

/*
 * One object member as jscan_object_next() sees it. `key` points at the
 * key's bytes inside the quotes, still escaped when `key_escaped`; `val`
 * is the exact value bytes.
 */
struct jscan_member {
	const char *key;
	size_t klen;
	int key_escaped;
	const char *val;
	size_t vlen;
};

/* A cursor over one object's members; fill it with jscan_object_begin(). */
struct jscan_iter {
	const char *p, *end;
	int first;		/* 1 before the first member, 2 after the last */
	int depth;		/* containers open around the members */
	/*
	 * Set to 1 after jscan_object_begin() when the object was already
	 * validated (as by jscan_get_valid()): members are then skipped by
	 * quotes and brackets only.
	 */
	int trusted;
};

/*
 * Start iterating the object in obj[0..len) (surrounding whitespace allowed).
 * -1 when it does not start with '{'. The members are validated as they are
 * reached; trailing bytes after the object are not looked at.
 */
int jscan_object_begin(struct jscan_iter *it, const char *obj, size_t len)
    __attribute__((warn_unused_result));
/*
 * 1 and *m filled, 0 at the closing brace, or refused: JSCAN_EBADJSON or
 * JSCAN_EDEPTH (the walk cannot go on), JSCAN_ENUL, JSCAN_EINT or JSCAN_EREAL
 * for a member that is well-formed but jansson refuses, with *m filled: the
 * next call goes on with the next member. A trusted iterator never refuses
 * a member for these three.
 */
int jscan_object_next(struct jscan_iter *it, struct jscan_member *m)
    __attribute__((warn_unused_result));

/* Does the member's key, unescaped, equal the NUL-terminated `name`? */
int jscan_key_eq(const struct jscan_member *m, const char *name);

/*
 * Unescape the member's key into buf as a C string. Its length, or -1 when it
 * does not fit in `size` or contains U+0000 (then it equals no C string).
 */
int jscan_key_copy(const struct jscan_member *m, char *buf, size_t size);

/*
 * Follow `path` (depth keys) through nested objects starting at obj[0..len).
 * 1 and *val, *vlen set to the value's exact bytes when found, 0 when a key
 * is absent or something on the way is not an object, a JSCAN_E* code when
 * what it scanned is refused.
 * Duplicate keys: the last one wins (jansson's json_object_get after
 * json_loads). Each object on the path is scanned to its end for that
 * reason; bytes after the final value's enclosing objects are not validated.
 */
int jscan_get(const char *obj, size_t len, const char *const *path,
    size_t depth, const char **val, size_t *vlen)
    __attribute__((warn_unused_result));

/*
 * jscan_get() on bytes already validated by this module (a result element,
 * an update keys_extract_raw() has walked): values are skipped by brackets
 * and quotes only. Well-formed is enough (an element handed out with
 * JSCAN_ENUL, JSCAN_EINT or JSCAN_EREAL). On bytes that are not well-formed
 * the answer is unspecified (reads still stay inside obj[0..len)): never
 * give it unchecked input.
 */
int jscan_get_valid(const char *obj, size_t len, const char *const *path,
    size_t depth, const char **val, size_t *vlen)
    __attribute__((warn_unused_result));

/*
 * The JSON integer in val[0..vlen) (a number with no fraction and no
 * exponent; "-0" is 0). 0 and *out set, -1 when it is anything else (a
 * string, a real, trailing bytes) or does not fit int64_t.
 */
int jscan_int64(const char *val, size_t vlen, int64_t *out)
    __attribute__((warn_unused_result));

/* Should jscan_first_key() take this (unescaped) key? Non-zero for yes. */
typedef int (*jscan_key_fn)(void *arg, const char *key);

/*
 * The first key of the object obj[0..len), in document order, other than
 * `skip_key` (may be NULL) and accepted by `accept` (NULL accepts any), copied
 * unescaped into buf[0..size). Keys that do not fit in buf are passed over.
 * 1 found, 0 none, a JSCAN_E* code when refused (an object whose members up
 * to the key found are valid counts as found).
 */
int jscan_first_key(const char *obj, size_t len, const char *skip_key,
    jscan_key_fn accept, void *arg, char *buf, size_t size)
    __attribute__((warn_unused_result));

#endif
