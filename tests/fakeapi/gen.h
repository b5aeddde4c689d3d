/* Deterministic generator of realistic update streams (messages, edits, callbacks...). */
#ifndef FAKEAPI_GEN_H
#define FAKEAPI_GEN_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "stream.h"

#define GEN_NTYPES 6	/* the STREAM_TYPE_* values 0..5 */

struct gen_opts {
	long count;
	long chats;
	long users;
	double group_fraction;
	uint64_t seed;
	double mix[GEN_NTYPES];
};

void gen_defaults(struct gen_opts *o);
/* "type=weight,..." over message, edited_message, callback_query, inline_query,
 * my_chat_member, poll; unnamed types get weight 0. 0 or -1 with err. */
int gen_parse_mix(const char *spec, double mix[GEN_NTYPES], char *err, size_t errlen);
/* Override fields of o from a JSON object (control endpoint). 0 or -1 with err. */
int gen_opts_from_json(const json_t *obj, struct gen_opts *o, char *err, size_t errlen);
/* Append o->count updates to s. 0 or -1 with err. */
int gen_run(struct stream *s, const struct gen_opts *o, char *err, size_t errlen);

#endif
