/* Fault injection rules per method: parsing, the table, and the per-call decision. */
#ifndef FAKEAPI_FAULT_H
#define FAKEAPI_FAULT_H

#include <stdint.h>
#include <stddef.h>
#include <event2/buffer.h>
#include <jansson.h>

#include "util.h"

enum fault_kind {
	FAULT_NONE = 0,
	FAULT_429,
	FAULT_500,
	FAULT_502,
	FAULT_BADJSON,
	FAULT_DROP,
	FAULT_TRUNCATE,
};

struct fault {
	char method[65];	/* a method name or "*" */
	enum fault_kind kind;
	uint64_t every;		/* every Kth matching call, 0 = off */
	double prob;		/* < 0: not given */
	uint64_t times;		/* stop after this many, 0 = unlimited */
	double retry_after;
	double latency_ms;
	double jitter_ms;
	uint64_t matched;	/* calls seen since the rule was set */
	uint64_t fired;
};

/* What to do with one call. */
struct fault_decision {
	enum fault_kind kind;
	double delay_ms;
	double retry_after;
};

struct fault_table;

/* Fill f from a JSON fault object / a "METHOD:key=value,..." spec. 0 or -1 with err. */
int fault_from_json(const json_t *obj, struct fault *f, char *err, size_t errlen);
int fault_from_spec(const char *spec, struct fault *f, char *err, size_t errlen);
const char *fault_kind_name(enum fault_kind k);

struct fault_table *fault_table_new(void);
void fault_table_free(struct fault_table *t);
/* Replace the rule for f->method (kind none without latency removes it). */
void fault_table_set(struct fault_table *t, const struct fault *f);
void fault_table_clear(struct fault_table *t);
void fault_table_json(const struct fault_table *t, struct evbuffer *buf);
/* Decide for one call of method; returns 1 if a rule fired (d filled), else 0. */
int fault_decide(struct fault_table *t, const char *method, struct util_rng *rng,
    struct fault_decision *d);

#endif
