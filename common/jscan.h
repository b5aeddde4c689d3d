/* Strict, allocation-free JSON scanning over raw bytes (RFC 8259), no DOM. */
#ifndef TGRUN_JSCAN_H
#define TGRUN_JSCAN_H

#include <stddef.h>
#include <stdint.h>

/*
 * What "valid" means here, everywhere in this module:
 * - RFC 8259 grammar; whitespace is space, \t, \n, \r only.
 * - Strings are well-formed UTF-8 (no overlongs, no UTF-8-encoded surrogates,
 *   nothing above U+10FFFF), no raw bytes below 0x20, escapes are the eight
 *   RFC ones plus \uXXXX; a \u high surrogate must be followed by a \u low
 *   surrogate and a low one must not stand alone. This is at least as strict
 *   as jansson, so bytes we pass on always load there. One exception: "\u0000"
 *   is valid JSON and accepted here, jansson refuses it without JSON_ALLOW_NUL.
 * - Numbers per the grammar (no leading zeros, no "1.", "1e", "+1", ".5");
 *   their magnitude is not checked (jansson refuses integers beyond int64).
 * - Containers nest at most JSCAN_MAX_DEPTH deep.
 * Inputs are (pointer, length); NUL bytes are ordinary bytes (invalid outside
 * strings, invalid raw inside them). Nothing is allocated, nothing is written
 * outside the caller's out-parameters.
 */
#define JSCAN_MAX_DEPTH 64

/*
 * Validate one JSON value starting at p (leading whitespace allowed) and set
 * *after just past it (trailing whitespace not consumed). 0, or -1 when the
 * bytes up to `end` do not start with a valid value.
 */
int jscan_skip_value(const char *p, const char *end, const char **after)
    __attribute__((warn_unused_result));

/* Called with the exact bytes of one result element, without whitespace. */
typedef int (*jscan_item_fn)(void *arg, const char *elem, size_t len);

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
 * (cb is then not called). Returns -1 when the body is malformed, when it is
 * not an object, or "ok" is missing or not a boolean. When cb returns
 * non-zero, the walk stops and that value is returned.
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
/* 1 and *m filled, 0 at the closing brace, -1 when malformed. */
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
 * is absent or something on the way is not an object, -1 when malformed.
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
 * and quotes only. On bytes that are not valid JSON the answer is
 * unspecified (reads still stay inside obj[0..len)): never give it
 * unchecked input.
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
 * unescaped into buf[0..size). Keys that do not fit in buf or contain U+0000
 * are passed over. 1 found, 0 none, -1 malformed (an object whose members up
 * to the key found are valid counts as found).
 */
int jscan_first_key(const char *obj, size_t len, const char *skip_key,
    jscan_key_fn accept, void *arg, char *buf, size_t size)
    __attribute__((warn_unused_result));

#endif
