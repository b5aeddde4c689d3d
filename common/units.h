/* Numbers with units, as config files and command lines write them: durations, sizes, rates, booleans. */
#ifndef TGRUN_UNITS_H
#define TGRUN_UNITS_H

#include <stddef.h>
#include <stdint.h>

#define UNITS_SECOND_MS	1000LL
#define UNITS_MINUTE_MS	(60 * UNITS_SECOND_MS)
#define UNITS_KIB	((int64_t)1024)
#define UNITS_MIB	(1024 * UNITS_KIB)

/*
 * Each parser takes the whole string: 0, -1 if it is malformed, -2 if it is
 * well formed but out of range (negative where that makes no sense, or past
 * 64 bits).
 */
int units_parse_int(const char *s, int64_t *v);		/* "-12", "42" */
int units_parse_duration(const char *s, int64_t *ms);	/* "250ms", "30s", "5m", "2" (= s) */
int units_parse_size(const char *s, int64_t *bytes);	/* "256k", "8m", "65536" */
int units_parse_rate(const char *s, int64_t *n, int64_t *period_ms);	/* "30/s", "20/m" */
/* yes/no, true/false, on/off, 1/0: 0 or -1. */
int units_parse_bool(const char *s, int *out);
/* What units_parse_bool() accepts, for messages. */
#define UNITS_BOOL_ACCEPTED "yes, no, true, false, on, off, 1, 0"

/* The shortest exact form: "5m", "30s", "250ms"; "8m", "256k", "100". */
void units_say_duration(int64_t ms, char *buf, size_t len);
void units_say_size(int64_t bytes, char *buf, size_t len);

#endif
