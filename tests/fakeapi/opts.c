/* Command line of tgrun-fakeapi: parsing and validation into struct opts. */
#include "opts.h"
#include "util.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: tgrun-fakeapi [--port N] [--token T] [--updates FILE.jsonl]\n"
    "       [--count N] [--chats N] [--users N] [--group-fraction F] [--rate R]\n"
    "       [--seed S] [--mix type=weight,...] [--first-id N]\n"
    "       [--fault METHOD:key=value,...]... [--record-limit N] [--hold]\n";

static int
num(const char *name, const char *arg, double lo, double hi, double *out)
{
	if (util_parse_double(arg, out) != 0 || *out < lo || *out > hi) {
		fprintf(stderr, "tgrun-fakeapi: --%s must be a number in [%g, %g], got '%s'\n",
		    name, lo, hi, arg);
		return -1;
	}
	return 0;
}

static int
integer(const char *name, const char *arg, long long lo, long long hi, long long *out)
{
	if (util_parse_i64(arg, out) != 0 || *out < lo || *out > hi) {
		fprintf(stderr, "tgrun-fakeapi: --%s must be an integer in [%lld, %lld], "
		    "got '%s'\n", name, lo, hi, arg);
		return -1;
	}
	return 0;
}

int
opts_parse(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "token", required_argument, NULL, 't' },
		{ "updates", required_argument, NULL, 'u' },
		{ "count", required_argument, NULL, 'n' },
		{ "chats", required_argument, NULL, 'c' },
		{ "users", required_argument, NULL, 'U' },
		{ "group-fraction", required_argument, NULL, 'g' },
		{ "rate", required_argument, NULL, 'r' },
		{ "seed", required_argument, NULL, 's' },
		{ "mix", required_argument, NULL, 'm' },
		{ "first-id", required_argument, NULL, 'f' },
		{ "fault", required_argument, NULL, 'F' },
		{ "record-limit", required_argument, NULL, 'R' },
		{ "hold", no_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char err[200];
	long long v;
	int ch;

	memset(o, 0, sizeof(*o));
	o->token = OPTS_DEFAULT_TOKEN;
	o->first_id = 1;
	o->record_limit = 1000000;
	gen_defaults(&o->gen);
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			if (integer("port", optarg, 0, 65535, &v))
				return -1;
			o->port = (int)v;
			break;
		case 't':
			if (*optarg == '\0' || strchr(optarg, '/') || strchr(optarg, '?')) {
				fprintf(stderr, "tgrun-fakeapi: --token must be non-empty, "
				    "without '/' or '?'\n");
				return -1;
			}
			o->token = optarg;
			break;
		case 'u':
			o->updates_file = optarg;
			break;
		case 'H':
			o->hold = 1;
			break;
		case 'n':
			if (integer("count", optarg, 0, 100000000, &v))
				return -1;
			o->gen.count = (long)v;
			break;
		case 'c':
			if (integer("chats", optarg, 1, 100000000, &v))
				return -1;
			o->gen.chats = (long)v;
			break;
		case 'U':
			if (integer("users", optarg, 1, 100000000, &v))
				return -1;
			o->gen.users = (long)v;
			break;
		case 'g':
			if (num("group-fraction", optarg, 0, 1, &o->gen.group_fraction))
				return -1;
			break;
		case 'r':
			if (num("rate", optarg, 0, 1e9, &o->rate))
				return -1;
			break;
		case 's':
			if (integer("seed", optarg, 0, INT64_MAX, &v))
				return -1;
			o->gen.seed = (uint64_t)v;
			break;
		case 'm':
			if (gen_parse_mix(optarg, o->gen.mix, err, sizeof(err)) != 0) {
				fprintf(stderr, "tgrun-fakeapi: --mix: %s\n", err);
				return -1;
			}
			break;
		case 'f':
			if (integer("first-id", optarg, 1, INT64_MAX / 2, &v))
				return -1;
			o->first_id = v;
			break;
		case 'F':
			if (o->nfaults == OPTS_MAX_FAULTS) {
				fprintf(stderr, "tgrun-fakeapi: too many --fault options\n");
				return -1;
			}
			if (fault_from_spec(optarg, &o->faults[o->nfaults], err,
			    sizeof(err)) != 0) {
				fprintf(stderr, "tgrun-fakeapi: --fault: %s\n", err);
				return -1;
			}
			o->nfaults++;
			break;
		case 'R':
			if (integer("record-limit", optarg, 0, INT64_MAX, &v))
				return -1;
			o->record_limit = (size_t)v;
			break;
		case 'h':
			fputs(usage, stdout);
			return 1;
		default:
			fprintf(stderr, "tgrun-fakeapi: unknown option or missing argument: "
			    "%s (see --help)\n", argv[optind - 1]);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tgrun-fakeapi: unexpected argument '%s' (see --help)\n",
		    argv[optind]);
		return -1;
	}
	return 0;
}
