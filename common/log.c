/* Logging to stderr: levels, process role, journald priorities, secret redaction. */
#include "log.h"
#include "clock.h"
#include "escape.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * The token, and a proxy URL, its credentials and its password, for the
 * running config and a reloaded one: the oldest secret is dropped beyond
 * this, so it must hold all of them.
 */
#define LOG_MAX_SECRETS 16
#define LOG_LINE_MAX 4096

static struct {
	char role[32];
	enum log_level level;
	int journal;		/* stderr is connected to journald */
	char *secrets[LOG_MAX_SECRETS];
	size_t secret_len[LOG_MAX_SECRETS];
	int nsecrets;
} lg = { "tgrun", LOG_LVL_INFO, -1, { 0 }, { 0 }, 0 };

static const char *const level_names[] = {
	[LOG_LVL_ERR] = "error", [LOG_LVL_WARN] = "warn",
	[LOG_LVL_NOTICE] = "notice", [LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};

void log_init(const char *role, int slot)
{
	if (slot >= 0)
		snprintf(lg.role, sizeof(lg.role), "%s %d", role, slot);
	else
		snprintf(lg.role, sizeof(lg.role), "%s", role);
	lg.journal = getenv("JOURNAL_STREAM") != NULL;
}

void log_set_level(enum log_level lvl) { lg.level = lvl; }
enum log_level log_get_level(void) { return lg.level; }

int log_level_parse(const char *s)
{
	for (int i = LOG_LVL_ERR; i <= LOG_LVL_DEBUG; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	if (strcmp(s, "err") == 0)
		return LOG_LVL_ERR;
	if (strcmp(s, "warning") == 0)
		return LOG_LVL_WARN;
	return -1;
}

void log_add_secret(const char *secret)
{
	char *copy;

	if (secret == NULL || *secret == '\0')
		return;
	for (int i = 0; i < lg.nsecrets; i++)
		if (strcmp(lg.secrets[i], secret) == 0)
			return;
	if ((copy = strdup(secret)) == NULL) {
		/* Better no log line than one that may show it. */
		lg.level = LOG_LVL_ERR;
		log_msg(LOG_LVL_ERR, "out of memory keeping a secret out of the log; "
		    "logging only errors from now on");
		return;
	}
	if (lg.nsecrets == LOG_MAX_SECRETS) {
		free(lg.secrets[0]);
		memmove(lg.secrets, lg.secrets + 1,
		    sizeof(lg.secrets[0]) * (LOG_MAX_SECRETS - 1));
		memmove(lg.secret_len, lg.secret_len + 1,
		    sizeof(lg.secret_len[0]) * (LOG_MAX_SECRETS - 1));
		lg.nsecrets--;
	}
	lg.secret_len[lg.nsecrets] = strlen(copy);
	lg.secrets[lg.nsecrets++] = copy;
}

/*
 * Copy `in` into `out` (capacity cap, always NUL-terminated) with every
 * secret replaced by "<redacted>". When `in` was cut short (truncated), a
 * secret cut off by its end is redacted too: its first bytes are a secret
 * as well.
 */
static void redact(const char *in, int truncated, char *out, size_t cap)
{
	static const char mark[] = "<redacted>";
	const size_t ml = sizeof(mark) - 1;
	size_t o = 0, len = strlen(in), i = 0;

	while (i < len && o + 1 < cap) {
		size_t hit = 0, left = len - i;

		for (int k = 0; k < lg.nsecrets && hit == 0; k++) {
			const char *s = lg.secrets[k];
			size_t sl = lg.secret_len[k];

			if (s[0] != in[i])
				continue;
			if (left >= sl && memcmp(in + i, s, sl) == 0)
				hit = sl;
			else if (left < sl && truncated && memcmp(in + i, s, left) == 0)
				hit = left;
		}
		if (hit > 0) {
			size_t n = ml < cap - 1 - o ? ml : cap - 1 - o;

			memcpy(out + o, mark, n);
			o += n;
			i += hit;
		} else {
			out[o++] = in[i++];
		}
	}
	out[o] = '\0';
}

void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	char raw[LOG_LINE_MAX], line[LOG_LINE_MAX], head[96];
	int saved = errno, n;

	if (lvl > lg.level)
		return;
	if (lg.journal < 0)
		lg.journal = getenv("JOURNAL_STREAM") != NULL;
	n = vsnprintf(raw, sizeof(raw), fmt, ap);
	redact(raw, n >= (int)sizeof(raw), line, sizeof(line));
	/*
	 * Text from outside (a handler's message, an update's type, an API
	 * error) must not start a line of its own: under journald "\n<0>..."
	 * would be a second entry at any priority it likes. Redaction comes
	 * first, so that escaping cannot split a secret it must find. (raw is
	 * reused: fibers log from small stacks.)
	 */
	escape_text(raw, sizeof(raw), line, strlen(line));
	if (lg.journal) {
		n = snprintf(head, sizeof(head), "<%d>%s: ", (int)lvl, lg.role);
	} else {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		n = snprintf(head, sizeof(head),
		    "%04d-%02d-%02d %02d:%02d:%02d.%03ld [%s] %s: ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
		    level_names[lvl], lg.role);
	}
	/* One write per line keeps lines from several processes whole. */
	{
		char out[LOG_LINE_MAX + 128];
		int m = snprintf(out, sizeof(out), "%.*s%s\n", n, head, raw);

		if (m > (int)sizeof(out) - 1)
			m = (int)sizeof(out) - 1;
		if (write(STDERR_FILENO, out, (size_t)m) < 0) {
			/* nowhere left to report it */
		}
	}
	errno = saved;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}

int log_rate_pass(struct log_rate *r, int64_t interval_ms, unsigned long *held)
{
	int64_t now = clock_ms();

	if (r->next_ms != 0 && now < r->next_ms) {
		r->held++;
		return 0;
	}
	*held = r->held;
	r->held = 0;
	r->next_ms = now + interval_ms;
	return 1;
}

void fatal_at(const char *func, const char *fmt, ...)
{
	char buf[LOG_LINE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_msg(LOG_LVL_ERR, "fatal in %s: %s", func, buf);
	abort();
}
