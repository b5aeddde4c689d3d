/*
 * Key extraction on one update's bytes: the master's raw walk
 * (keys_extract_raw) finds exactly what the worker's jansson walk finds,
 * refuses what jansson refuses, and the trusting walk never reads outside
 * its input whatever it is given.
 */
#include <jansson.h>

#include "config.h"
#include "fuzz.h"
#include "log.h"
#include "seqkeys.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_set_level(LOG_LVL_ERR);	/* unknown update types are logged once */
	return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	const char *json = (const char *)data;
	struct update_keys a, b, v;
	uint64_t out[SEQKEYS_MAX], again[SEQKEYS_MAX];
	json_error_t jerr;
	json_t *j;
	int ra, rb, rv, n;

	ra = keys_extract_raw(json, size, &a);
	rv = keys_extract_raw_valid(json, size, &v);	/* any answer; in bounds */
	j = fuzz_worker_load(json, size, JSON_DECODE_ANY, &jerr);
	if (j == NULL) {
		if (ra != -1)
			fuzz_fail(data, size, "raw walk accepts what jansson refuses");
		return 0;
	}
	rb = keys_extract(j, &b);
	json_decref(j);
	if (ra != rb || (ra == 0 && !fuzz_keys_equal(&a, &b)))
		fuzz_fail(data, size, "raw rc %d id %lld %s \"%s\" c%d:%lld u%d:%lld "
		    "t%d:%lld; jansson rc %d id %lld %s \"%s\" c%d:%lld u%d:%lld "
		    "t%d:%lld", ra, (long long)a.update_id, keys_type_name(a.type),
		    a.name, a.has_chat, (long long)a.chat_id, a.has_user,
		    (long long)a.user_id, a.has_thread, (long long)a.thread_id, rb,
		    (long long)b.update_id, keys_type_name(b.type), b.name,
		    b.has_chat, (long long)b.chat_id, b.has_user,
		    (long long)b.user_id, b.has_thread, (long long)b.thread_id);
	if (rv != rb || (rv == 0 && !fuzz_keys_equal(&v, &b)))
		fuzz_fail(data, size, "the trusting walk differs on valid JSON");
	if (ra != 0)
		return 0;
	n = seqkeys_for(&a, CFG_SEQ_CHAT | CFG_SEQ_USER | CFG_SEQ_CHAT_THREAD, out);
	if (n < 0 || n > SEQKEYS_MAX || n != seqkeys_for(&b, CFG_SEQ_CHAT |
	    CFG_SEQ_USER | CFG_SEQ_CHAT_THREAD, again) ||
	    memcmp(out, again, (size_t)n * sizeof(out[0])) != 0)
		fuzz_fail(data, size, "sequencing keys differ");
	return 0;
}
