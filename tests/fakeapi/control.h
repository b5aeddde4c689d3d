/* The /__fake/ control endpoint: push updates, set faults and webhook, read stats and records. */
#ifndef FAKEAPI_CONTROL_H
#define FAKEAPI_CONTROL_H

#include <event2/http.h>

#include "app.h"

/* path is what follows "/__fake/", query may be NULL. */
void control_handle(struct app *app, struct evhttp_request *req, const char *path,
    const char *query);

#endif
