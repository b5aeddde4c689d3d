/* Command line of tgrun-fakeapi: parsing and validation into struct opts. */
#ifndef FAKEAPI_OPTS_H
#define FAKEAPI_OPTS_H

#include <stddef.h>
#include <stdint.h>

#include "fault.h"
#include "gen.h"

#define OPTS_MAX_FAULTS 64
#define OPTS_DEFAULT_TOKEN "123456789:AAH-test_TOKEN-do-not-log-0123456789"

struct opts {
	int port;
	const char *token;
	const char *updates_file;
	struct gen_opts gen;
	double rate;
	int64_t first_id;
	size_t record_limit;
	int hold;		/* release nothing until POST /__fake/release */
	struct fault faults[OPTS_MAX_FAULTS];
	int nfaults;
};

/* Fill o from argv. Returns 0, 1 when --help was printed, or -1 after printing one
 * error line to stderr (the caller exits 2). */
int opts_parse(int argc, char **argv, struct opts *o);

#endif
