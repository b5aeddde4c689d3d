/* Bot API methods other than getUpdates: recording, echo detection, results. */
#ifndef FAKEAPI_METHODS_H
#define FAKEAPI_METHODS_H

#include "server.h"

/* Record, detect echoes, answer; owns c from here on. */
void methods_call(struct call *c);
/* Put c in the call record (also done for fault-injected calls). */
void methods_record(struct call *c);

#endif
