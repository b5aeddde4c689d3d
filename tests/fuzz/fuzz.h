/* What the fuzz targets share: failing loudly, and comparing update keys. */
#ifndef TGRUN_FUZZ_H
#define TGRUN_FUZZ_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "keys.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A finding: say what, show the input, abort so libFuzzer saves it. */
static inline void __attribute__((format(printf, 3, 4), noreturn))
fuzz_fail(const void *data, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("FUZZ FAILURE: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\ninput (%zu bytes): %.*s\n", size,
	    size > 4096 ? 4096 : (int)size, (const char *)data);
	abort();
}

/*
 * jansson as the worker calls it on an update: a raw NUL byte is refused
 * first, since jansson's lexer skips one right after a number or a literal
 * (worker/main.c, common/jscan.h).
 */
static inline json_t *fuzz_worker_load(const void *data, size_t size,
    size_t flags, json_error_t *err)
{
	if (memchr(data, '\0', size) != NULL) {
		snprintf(err->text, sizeof(err->text), "a NUL byte in the text");
		err->text[JSON_ERROR_TEXT_LENGTH - 1] = (char)json_error_invalid_syntax;
		return NULL;
	}
	return json_loadb(data, size, flags, err);
}

/* The master's keys (raw) and the worker's (jansson) of one update agree? */
static inline int fuzz_keys_equal(const struct update_keys *a,
    const struct update_keys *b)
{
	return a->update_id == b->update_id && a->type == b->type &&
	    strcmp(a->name, b->name) == 0 && a->has_chat == b->has_chat &&
	    a->has_user == b->has_user && a->has_thread == b->has_thread &&
	    (!a->has_chat || a->chat_id == b->chat_id) &&
	    (!a->has_user || a->user_id == b->user_id) &&
	    (!a->has_thread || a->thread_id == b->thread_id);
}

#endif
