/*
 * The config parser (daemon/config.c) on any file: it loads or refuses with
 * a message, never crashes or leaks, and never echoes the token back.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"
#include "log.h"

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* config_load() takes a path: one memory file, rewritten per input. */
	fd = memfd_create("tgrun-fuzz.conf", MFD_CLOEXEC);
	if (fd == -1) {
		perror("memfd_create");
		abort();
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	log_set_level(LOG_LVL_ERR);	/* "a token in the config file" warnings */
	return 0;
}

/* Shaped like a Bot API token ("123456:ABC-def_..."): no message says that. */
static int token_shaped(const char *p, size_t n)
{
	size_t i = 0, digits;

	while (i < n && p[i] >= '0' && p[i] <= '9')
		i++;
	digits = i;
	if (digits == 0 || i == n || p[i++] != ':' || n - i < 8)
		return 0;
	for (; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'z') ||
		    (p[i] >= 'A' && p[i] <= 'Z') || p[i] == '_' || p[i] == '-'))
			return 0;
	return 1;
}

/*
 * The value of the first "token = ..." (or ':') line of [bot], cut at
 * whitespace, when it is shaped like a token and occurs nowhere else in the
 * file: then it can only reach an error message from that line.
 */
static size_t token_value(const char *s, size_t size, const char **v)
{
	const char *p = s, *end = s + size, *eol, *q;
	int in_bot = 0;

	for (; p < end; p = eol + 1) {
		if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
			eol = end;
		if (*p == '[') {
			in_bot = eol - p >= 5 && memcmp(p, "[bot]", 5) == 0;
			continue;
		}
		if (!in_bot || eol - p < 5 || memcmp(p, "token", 5) != 0)
			continue;
		for (q = p + 5; q < eol && (*q == ' ' || *q == '\t'); q++)
			;
		if (q >= eol || (*q != '=' && *q != ':'))
			continue;
		for (q++; q < eol && (*q == ' ' || *q == '\t'); q++)
			;
		for (p = q; q < eol && *q != ' ' && *q != '\t' && *q != '\r'; q++)
			;
		if (!token_shaped(p, (size_t)(q - p)) ||
		    memmem(s, (size_t)(p - s), p, (size_t)(q - p)) ||
		    memmem(q, (size_t)(end - q), p, (size_t)(q - p)))
			return 0;
		*v = p;
		return (size_t)(q - p);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct config *cfg;
	char err[512];
	const char *tok;
	size_t tlen;

	if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	memset(err, 'x', sizeof(err));
	err[sizeof(err) - 1] = '\0';
	cfg = config_load(path, err, sizeof(err));
	if (cfg == NULL) {
		if (memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0' ||
		    err[0] == 'x')
			fuzz_fail(data, size, "refused without a message");
		tlen = token_value((const char *)data, size, &tok);
		if (tlen > 0 && memmem(err, strlen(err), tok, tlen) != NULL)
			fuzz_fail(data, size, "the error shows the token: %s", err);
		return 0;
	}
	config_free(cfg);
	return 0;
}
