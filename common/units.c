/* Numbers with units, as config files and command lines write them: durations, sizes, rates, booleans. */
#include "units.h"

#include <stdio.h>
#include <string.h>

#define SECONDS	UNITS_SECOND_MS
#define MINUTES	UNITS_MINUTE_MS
#define KIB	UNITS_KIB
#define MIB	UNITS_MIB

static int parse_digits(const char **sp, uint64_t *v);

/* Decimal digits at *sp: 0, -1 if none, -2 on overflow. Advances *sp. */
static int
parse_digits(const char **sp, uint64_t *v)
{
	const char *s = *sp;
	uint64_t acc = 0;
	int over = 0;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (acc > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			over = 1;
		else
			acc = acc * 10 + (uint64_t)(*s - '0');
	}
	*sp = s;
	*v = acc;
	return over ? -2 : 0;
}

/* An optionally negative decimal: 0, -1 if not a number, -2 if too large. */
int
units_parse_int(const char *s, int64_t *v)
{
	uint64_t u;
	int neg = 0, r;

	if (*s == '-') {
		neg = 1;
		s++;
	}
	if ((r = parse_digits(&s, &u)) == -1 || *s != '\0')
		return -1;
	if (r == -2 || u > (uint64_t)INT64_MAX)
		return -2;
	*v = neg ? -(int64_t)u : (int64_t)u;
	return 0;
}

/* A unit suffix and what one of it is worth. */
struct unit {
	const char *suffix;
	uint64_t mult;
};

/*
 * A non-negative decimal followed by one of `units` (the table ends with a
 * NULL suffix): 0, -1 if malformed, -2 if negative or out of range.
 */
static int
parse_scaled(const char *s, const struct unit *units, int64_t *out)
{
	uint64_t u;
	int neg = 0, r;

	if (*s == '-') {
		neg = 1;
		s++;
	}
	if ((r = parse_digits(&s, &u)) == -1)
		return -1;
	for (; units->suffix != NULL; units++) {
		if (strcmp(s, units->suffix) != 0)
			continue;
		if (neg || r == -2 || u > (uint64_t)INT64_MAX / units->mult)
			return -2;
		*out = (int64_t)(u * units->mult);
		return 0;
	}
	return -1;
}

/* "250ms", "30s", "5m", "2" (seconds): 0, -1 if malformed, -2 if out of range. */
int
units_parse_duration(const char *s, int64_t *ms)
{
	static const struct unit units[] = {
		{ "ms", 1 }, { "s", SECONDS }, { "", SECONDS }, { "m", MINUTES },
		{ NULL, 0 },
	};

	return parse_scaled(s, units, ms);
}

/* "256k", "8m", "65536" (bytes): 0, -1 if malformed, -2 if out of range. */
int
units_parse_size(const char *s, int64_t *bytes)
{
	static const struct unit units[] = {
		{ "", 1 }, { "k", (uint64_t)KIB }, { "m", (uint64_t)MIB }, { NULL, 0 },
	};

	return parse_scaled(s, units, bytes);
}

/* "30/s", "20/m": 0, -1 if malformed, -2 if the count is out of range. */
int
units_parse_rate(const char *s, int64_t *n, int64_t *period_ms)
{
	uint64_t u;
	int neg = 0, r;

	if (*s == '-') {
		neg = 1;
		s++;
	}
	if ((r = parse_digits(&s, &u)) == -1 || *s++ != '/')
		return -1;
	if (strcmp(s, "s") == 0)
		*period_ms = SECONDS;
	else if (strcmp(s, "m") == 0)
		*period_ms = MINUTES;
	else
		return -1;
	if (neg || r == -2 || u > (uint64_t)INT64_MAX)
		return -2;
	*n = (int64_t)u;
	return 0;
}

void
units_say_duration(int64_t ms, char *buf, size_t len)
{
	if (ms != 0 && ms % MINUTES == 0)
		snprintf(buf, len, "%lldm", (long long)(ms / MINUTES));
	else if (ms % SECONDS == 0)
		snprintf(buf, len, "%llds", (long long)(ms / SECONDS));
	else
		snprintf(buf, len, "%lldms", (long long)ms);
}

void
units_say_size(int64_t bytes, char *buf, size_t len)
{
	if (bytes != 0 && bytes % MIB == 0)
		snprintf(buf, len, "%lldm", (long long)(bytes / MIB));
	else if (bytes != 0 && bytes % KIB == 0)
		snprintf(buf, len, "%lldk", (long long)(bytes / KIB));
	else
		snprintf(buf, len, "%lld", (long long)bytes);
}


int
units_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}
