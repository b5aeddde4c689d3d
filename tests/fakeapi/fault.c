/* Fault injection rules per method: parsing, the table, and the per-call decision. */
#include "fault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FAULTS 128

struct fault_table {
	struct fault f[MAX_FAULTS];
	int n;
};

static const char *const kind_names[] = {
	[FAULT_NONE] = "none", [FAULT_429] = "429", [FAULT_500] = "500",
	[FAULT_502] = "502", [FAULT_BADJSON] = "badjson", [FAULT_DROP] = "drop",
	[FAULT_TRUNCATE] = "truncate",
};

const char *
fault_kind_name(enum fault_kind k)
{
	return kind_names[k];
}

static void
fault_init(struct fault *f)
{
	memset(f, 0, sizeof(*f));
	f->prob = -1;
	f->retry_after = 1;
}

static int
valid_method(const char *m)
{
	size_t n = strlen(m);

	if (strcmp(m, "*") == 0)
		return 1;
	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = m[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_'))
			return 0;
	}
	return 1;
}

/* One key: the value is a JSON value (numbers may come as strings from a spec). */
static int
set_key(struct fault *f, const char *key, const json_t *v, char *err, size_t errlen)
{
	double d;

	if (strcmp(key, "method") == 0) {
		if (!json_is_string(v) || !valid_method(json_string_value(v)))
			goto bad;
		snprintf(f->method, sizeof(f->method), "%s", json_string_value(v));
		return 0;
	}
	if (strcmp(key, "kind") == 0) {
		char kb[32];

		if (json_is_integer(v))
			snprintf(kb, sizeof(kb), "%lld", (long long)json_integer_value(v));
		else if (json_is_string(v))
			snprintf(kb, sizeof(kb), "%s", json_string_value(v));
		else
			goto bad;
		for (size_t i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++) {
			if (strcmp(kb, kind_names[i]) == 0) {
				f->kind = (enum fault_kind)i;
				return 0;
			}
		}
		snprintf(err, errlen, "fault kind must be one of none, 429, 500, 502, "
		    "badjson, drop, truncate");
		return -1;
	}
	if (util_json_number(v, &d) != 0 || d < 0)
		goto bad;
	if (strcmp(key, "every") == 0)
		f->every = (uint64_t)d;
	else if (strcmp(key, "prob") == 0) {
		if (d > 1)
			goto bad;
		f->prob = d;
	} else if (strcmp(key, "times") == 0)
		f->times = (uint64_t)d;
	else if (strcmp(key, "retry_after") == 0)
		f->retry_after = d;
	else if (strcmp(key, "latency_ms") == 0)
		f->latency_ms = d;
	else if (strcmp(key, "jitter_ms") == 0)
		f->jitter_ms = d;
	else {
		snprintf(err, errlen, "unknown fault key '%s' (method, kind, every, prob, "
		    "times, retry_after, latency_ms, jitter_ms)", key);
		return -1;
	}
	return 0;
bad:
	snprintf(err, errlen, "bad value for fault key '%s'", key);
	return -1;
}

int
fault_from_json(const json_t *obj, struct fault *f, char *err, size_t errlen)
{
	const char *key;
	json_t *v;

	fault_init(f);
	if (!json_is_object(obj)) {
		snprintf(err, errlen, "fault must be a JSON object");
		return -1;
	}
	json_object_foreach((json_t *)obj, key, v) {
		if (set_key(f, key, v, err, errlen) != 0)
			return -1;
	}
	if (f->method[0] == '\0') {
		snprintf(err, errlen, "fault needs a method (a name or \"*\")");
		return -1;
	}
	return 0;
}

int
fault_from_spec(const char *spec, struct fault *f, char *err, size_t errlen)
{
	const char *colon = strchr(spec, ':');
	char *copy, *tok, *save = NULL;
	int rc = 0;

	fault_init(f);
	if (colon == NULL || (size_t)(colon - spec) > 64) {
		snprintf(err, errlen, "fault spec must be METHOD:key=value,...");
		return -1;
	}
	memcpy(f->method, spec, (size_t)(colon - spec));
	f->method[colon - spec] = '\0';
	if (!valid_method(f->method)) {
		snprintf(err, errlen, "bad method in fault spec");
		return -1;
	}
	copy = strdup(colon + 1);
	if (copy == NULL)
		return -1;
	for (tok = strtok_r(copy, ",", &save); tok && rc == 0;
	    tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		json_t *v;

		if (eq == NULL) {
			snprintf(err, errlen, "fault spec item '%s' is not key=value", tok);
			rc = -1;
			break;
		}
		*eq = '\0';
		if (strcmp(tok, "method") == 0) {
			snprintf(err, errlen, "method goes before the colon in a fault spec");
			rc = -1;
			break;
		}
		v = json_string(eq + 1);
		rc = v ? set_key(f, tok, v, err, errlen) : -1;
		json_decref(v);
	}
	free(copy);
	return rc;
}

struct fault_table *
fault_table_new(void)
{
	return util_xcalloc(1, sizeof(struct fault_table));
}

void
fault_table_free(struct fault_table *t)
{
	free(t);
}

void
fault_table_set(struct fault_table *t, const struct fault *f)
{
	int i;

	for (i = 0; i < t->n; i++) {
		if (strcmp(t->f[i].method, f->method) == 0)
			break;
	}
	if (f->kind == FAULT_NONE && f->latency_ms <= 0 && f->jitter_ms <= 0) {
		if (i < t->n)
			t->f[i] = t->f[--t->n];
		return;
	}
	if (i == t->n) {
		if (t->n == MAX_FAULTS)
			return;
		t->n++;
	}
	t->f[i] = *f;
	t->f[i].matched = t->f[i].fired = 0;
}

void
fault_table_clear(struct fault_table *t)
{
	t->n = 0;
}

void
fault_table_json(const struct fault_table *t, struct evbuffer *buf)
{
	evbuffer_add(buf, "{\"ok\":true,\"faults\":[", 21);
	for (int i = 0; i < t->n; i++) {
		const struct fault *f = &t->f[i];

		evbuffer_add_printf(buf, "%s{\"method\":\"%s\",\"kind\":\"%s\",\"every\":%llu,"
		    "\"prob\":%g,\"times\":%llu,\"retry_after\":%g,\"latency_ms\":%g,"
		    "\"jitter_ms\":%g,\"matched\":%llu,\"fired\":%llu}", i ? "," : "",
		    f->method, kind_names[f->kind], (unsigned long long)f->every,
		    f->prob < 0 ? 0 : f->prob, (unsigned long long)f->times,
		    f->retry_after, f->latency_ms, f->jitter_ms,
		    (unsigned long long)f->matched, (unsigned long long)f->fired);
	}
	evbuffer_add(buf, "]}", 2);
}

int
fault_decide(struct fault_table *t, const char *method, struct util_rng *rng,
    struct fault_decision *d)
{
	struct fault *f = NULL, *any = NULL;

	for (int i = 0; i < t->n; i++) {
		if (strcmp(t->f[i].method, method) == 0)
			f = &t->f[i];
		else if (t->f[i].method[0] == '*')
			any = &t->f[i];
	}
	if (f == NULL)
		f = any;
	if (f == NULL)
		return 0;
	f->matched++;
	if (f->times > 0 && f->fired >= f->times)
		return 0;
	if (f->every > 0 && f->matched % f->every != 0)
		return 0;
	if (f->prob >= 0 && util_rng_unit(rng) >= f->prob)
		return 0;
	f->fired++;
	d->kind = f->kind;
	d->retry_after = f->retry_after;
	d->delay_ms = f->latency_ms;
	if (f->jitter_ms > 0)
		d->delay_ms += util_rng_unit(rng) * f->jitter_ms;
	return 1;
}
