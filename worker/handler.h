/* Loading a handler .so: dlopen, ABI check, symbol lookup. */
#ifndef TGRUN_HANDLER_H
#define TGRUN_HANDLER_H

#include <stddef.h>
#include <jansson.h>

struct tgrun_ctx;
struct tgrun_bot;

struct handler {
	void *dl;
	int (*handle)(struct tgrun_ctx *, const json_t *);
	int (*init)(struct tgrun_bot *);
	void (*fini)(struct tgrun_bot *);
};

/*
 * Load `path`. Nothing in the handler runs before the ABI version is
 * checked (constructors aside). Returns 0, or -1 with err filled.
 */
int handler_load(struct handler *h, const char *path, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void handler_unload(struct handler *h);

#endif
