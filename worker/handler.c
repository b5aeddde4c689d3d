/* Loading a handler .so: dlopen, ABI check, symbol lookup. */
#include "handler.h"
#include "tgrun.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int handler_load(struct handler *h, const char *path, char *err, size_t errlen)
{
	const unsigned int *abi;
	const char *e;

	memset(h, 0, sizeof(*h));
	h->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h->dl == NULL) {
		e = dlerror();
		snprintf(err, errlen, "cannot load handler: %s", e ? e : path);
		return -1;
	}
	dlerror();
	abi = dlsym(h->dl, "tgrun_handler_abi");
	if (abi == NULL) {
		snprintf(err, errlen, "handler %s: no tgrun_handler_abi symbol "
		    "(add TGRUN_HANDLER; to the handler)", path);
		goto fail;
	}
	if (*abi != TGRUN_ABI_VERSION) {
		snprintf(err, errlen, "handler %s: built for handler ABI %u, "
		    "this worker speaks ABI %u (rebuild it against this tgrun.h)",
		    path, *abi, TGRUN_ABI_VERSION);
		goto fail;
	}
	*(void **)&h->handle = dlsym(h->dl, "tgrun_handle");
	if (h->handle == NULL) {
		snprintf(err, errlen, "handler %s: no tgrun_handle function", path);
		goto fail;
	}
	*(void **)&h->init = dlsym(h->dl, "tgrun_init");
	*(void **)&h->fini = dlsym(h->dl, "tgrun_fini");
	return 0;
fail:
	dlclose(h->dl);
	h->dl = NULL;
	return -1;
}

void handler_unload(struct handler *h)
{
	if (h->dl != NULL)
		dlclose(h->dl);
	memset(h, 0, sizeof(*h));
}
