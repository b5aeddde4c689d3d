/* Bot API call counters: counted per worker, reported in STATS frames, summed by the master. */
#include "wstats.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Methods a bot uses are few; beyond this they are counted as "other". */
#define WSTATS_METHODS 32
#define WSTATS_NAME 48

const char *const wstats_outcome_names[WS__COUNT] = {
	"ok", "api_error", "network_error", "timeout", "cancelled",
};

struct wstats {
	struct {
		char name[WSTATS_NAME];
		uint64_t n[WS__COUNT];
	} m[WSTATS_METHODS];
	int nm;
	uint64_t n429;
	int dirty;
};

struct wstats *wstats_new(void)
{
	return calloc(1, sizeof(struct wstats));
}

void wstats_free(struct wstats *s)
{
	free(s);
}

void wstats_api(struct wstats *s, const char *method, enum wstats_outcome o,
    int is_429)
{
	int i;

	if (s == NULL || (unsigned)o >= WS__COUNT)
		return;
	if (strlen(method) >= WSTATS_NAME)
		method = "other";
	for (i = 0; i < s->nm; i++)
		if (strcmp(s->m[i].name, method) == 0)
			break;
	if (i == s->nm) {
		if (s->nm == WSTATS_METHODS) {
			/* The last entry is "other" once the table is full. */
			i = WSTATS_METHODS - 1;
			snprintf(s->m[i].name, WSTATS_NAME, "other");
		} else {
			snprintf(s->m[i].name, WSTATS_NAME, "%s", method);
			s->nm++;
		}
	}
	s->m[i].n[o]++;
	s->n429 += is_429 != 0;
	s->dirty = 1;
}

json_t *wstats_take(struct wstats *s)
{
	json_t *api, *o;

	if (s == NULL || !s->dirty)
		return NULL;
	api = json_object();
	for (int i = 0; api != NULL && i < s->nm; i++) {
		o = json_object();
		for (int k = 0; o != NULL && k < WS__COUNT; k++)
			if (s->m[i].n[k] > 0)
				json_object_set_new(o, wstats_outcome_names[k],
				    json_integer((json_int_t)s->m[i].n[k]));
		json_object_set_new(api, s->m[i].name, o);
	}
	o = json_pack("{s:o, s:I}", "api", api, "429", (json_int_t)s->n429);
	if (o != NULL) {
		memset(s->m, 0, sizeof(s->m));
		s->nm = 0;
		s->n429 = 0;
		s->dirty = 0;
	}
	return o;
}
