/*
 * The getUpdates scanner against jansson: the master (common/jscan.c) must
 * accept exactly the answers jansson accepts as the poller and the worker
 * call it, say why it refuses, and split out the same updates with the same
 * ids and keys.
 */
#include <jansson.h>

#include "fuzz.h"
#include "jscan.h"
#include "log.h"

#define MAX_ITEMS 256

struct items {
	size_t n;
	int overflow;
	const char *elem[MAX_ITEMS];
	size_t len[MAX_ITEMS];
	int err[MAX_ITEMS];
};

static int collect(void *arg, const char *elem, size_t len, int err)
{
	struct items *it = arg;

	if (it->n == MAX_ITEMS) {
		it->overflow = 1;
		return 0;
	}
	it->elem[it->n] = elem;
	it->len[it->n] = len;
	it->err[it->n] = err;
	it->n++;
	return 0;
}

/* jansson's reasons that match jscan's well-formed refusals. */
static int soft_reason(const json_error_t *e, int code)
{
	enum json_error_code c = json_error_code(e);

	if (code == JSCAN_ENUL)
		return c == json_error_null_character || c == json_error_null_byte_in_key;
	return c == json_error_numeric_overflow;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_set_level(LOG_LVL_ERR);	/* unknown update types are logged once */
	return 0;
}

/*
 * One element jscan handed out without a flaw: its span loads alone, as
 * jansson's element i when there is one, and both walkers give its keys.
 */
static void check_item(const unsigned char *data, size_t size,
    const struct items *it, size_t i, const json_t *want)
{
	struct update_keys a, b;
	json_error_t jerr;
	json_t *j;
	int ra, rb;

	j = json_loadb(it->elem[i], it->len[i], JSON_DECODE_ANY, &jerr);
	if (j == NULL || (want != NULL && !json_equal(j, want)))
		fuzz_fail(data, size, "element %zu: its span \"%.*s\" is not "
		    "jansson's element (%s)", i, (int)it->len[i], it->elem[i],
		    j ? "differs" : jerr.text);
	ra = keys_extract_raw_valid(it->elem[i], it->len[i], &a);
	rb = keys_extract(j, &b);
	json_decref(j);
	if (ra != rb || (ra == 0 && !fuzz_keys_equal(&a, &b)))
		fuzz_fail(data, size, "element %zu: keys differ (raw rc %d id %lld "
		    "\"%s\", jansson rc %d id %lld \"%s\")", i, ra,
		    (long long)a.update_id, a.name, rb, (long long)b.update_id,
		    b.name);
	ra = keys_extract_raw(it->elem[i], it->len[i], &a);
	if (ra != rb || (ra == 0 && !fuzz_keys_equal(&a, &b)))
		fuzz_fail(data, size, "element %zu: validating walk differs", i);
}

/* An element jscan flagged: jansson refuses it alone too, for that reason. */
static void check_flawed(const unsigned char *data, size_t size,
    const struct items *it, size_t i)
{
	struct update_keys k;
	json_error_t jerr;
	json_t *j;

	j = json_loadb(it->elem[i], it->len[i], JSON_DECODE_ANY, &jerr);
	if (j != NULL || !soft_reason(&jerr, it->err[i]))
		fuzz_fail(data, size, "element %zu flagged %s, jansson: %s", i,
		    jscan_strerror(it->err[i]), j ? "loads it" : jerr.text);
	json_decref(j);
	/* The master can still read its id to set it aside. */
	(void)keys_extract_raw_valid(it->elem[i], it->len[i], &k);
	if (keys_extract_raw(it->elem[i], it->len[i], &k) != -1)
		fuzz_fail(data, size, "element %zu: validating walk accepts it", i);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	const char *body = (const char *)data, *after;
	struct items it = { 0 };
	json_error_t jerr;
	json_t *j, *jany, *ok, *res;
	int rc, flawed = 0, mine, theirs, one, okv = -1;
	size_t i;

	rc = jscan_result_array(body, size, &okv, collect, &it);
	for (i = 0; i < it.n; i++) {
		if (it.elem[i] < body || it.elem[i] + it.len[i] > body + size)
			fuzz_fail(data, size, "element %zu outside the body", i);
		if (it.err[i] != 0 && !(it.err[i] <= JSCAN_ENUL &&
		    it.err[i] >= JSCAN_EREAL))
			fuzz_fail(data, size, "element %zu: code %d", i, it.err[i]);
		flawed |= it.err[i] != 0;
	}
	if (rc > 0 || rc < JSCAN_EREAL || (rc != 0 && it.n > 0))
		fuzz_fail(data, size, "result_array rc %d after %zu elements", rc,
		    it.n);

	/* What the poller's slow path and botapi_decode() do: flags 0. */
	j = fuzz_worker_load(body, size, 0, &jerr);
	ok = json_object_get(j, "ok");
	mine = rc == 0 && !flawed;
	theirs = j != NULL && json_is_boolean(ok);
	if (mine != theirs)
		fuzz_fail(data, size, "jscan %s (rc %d%s), jansson %s", mine ?
		    "accepts" : "refuses", rc, flawed ? ", a flawed element" : "",
		    theirs ? "accepts" : j ? "loads it, ok is no boolean" : jerr.text);
	/*
	 * A well-formed body jscan refuses: jansson refuses it for a flaw too
	 * (not necessarily this one: jscan names one outside the elements).
	 */
	if (j == NULL && rc != 0 && JSCAN_WELLFORMED(rc) &&
	    !soft_reason(&jerr, JSCAN_ENUL) && !soft_reason(&jerr, JSCAN_EINT))
		fuzz_fail(data, size, "jscan says %s, jansson %s",
		    jscan_strerror(rc), jerr.text);
	/*
	 * All before jscan's depth fault is well-formed: jansson fails at the
	 * same place, or earlier on a flaw.
	 */
	if (j == NULL && rc == JSCAN_EDEPTH && memchr(data, 0, size) == NULL &&
	    json_error_code(&jerr) != json_error_stack_overflow &&
	    !soft_reason(&jerr, JSCAN_ENUL) && !soft_reason(&jerr, JSCAN_EINT))
		fuzz_fail(data, size, "jscan: too deep, jansson: %s", jerr.text);

	/* The document as one value of any kind. */
	one = jscan_skip_value(body, body + size, &after);
	if (JSCAN_WELLFORMED(one)) {
		while (after < body + size && (*after == ' ' || *after == '\t' ||
		    *after == '\n' || *after == '\r'))
			after++;
		if (after != body + size)
			one = JSCAN_EBADJSON;
	}
	jany = fuzz_worker_load(body, size, JSON_DECODE_ANY, &jerr);
	if ((one == 0) != (jany != NULL))
		fuzz_fail(data, size, "skip_value %d, jansson %s", one,
		    jany ? "loads it" : "refuses");
	/* One value: jscan names the first flaw, as jansson does. */
	if (one != 0 && JSCAN_WELLFORMED(one) && !soft_reason(&jerr, one))
		fuzz_fail(data, size, "skip_value says %s, jansson %s",
		    jscan_strerror(one), jerr.text);
	json_decref(jany);
	if (theirs && jscan_result_array(body, size, &okv, NULL, NULL) != 0)
		fuzz_fail(data, size, "validation alone refuses");

	/* Both accept: the same ok, the same updates, byte spans that load as them. */
	res = json_object_get(j, "result");
	if (theirs && okv != json_is_true(ok))
		fuzz_fail(data, size, "ok %d, jansson %d", okv, json_is_true(ok));
	if (theirs && (!okv || !json_is_array(res)) && it.n != 0)
		fuzz_fail(data, size, "%zu elements without a result array", it.n);
	if (theirs && okv && json_is_array(res) && !it.overflow &&
	    it.n != json_array_size(res))
		fuzz_fail(data, size, "%zu elements, jansson %zu", it.n,
		    json_array_size(res));
	for (i = 0; i < it.n; i++) {
		if (it.err[i] != 0)
			check_flawed(data, size, &it, i);
		else
			check_item(data, size, &it, i, theirs ?
			    json_array_get(res, i) : NULL);
	}
	json_decref(j);
	return 0;
}
