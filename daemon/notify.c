/* Telling systemd about the master's state over $NOTIFY_SOCKET (sd_notify). */
#include "notify.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

static int send_state(const char *what, const char *state);
static int scrubbed(const char *entry);

void notify_init(struct notify *n)
{
	const char *sock = getenv("NOTIFY_SOCKET");
	uint64_t usec = 0;
	int r;

	memset(n, 0, sizeof(*n));
	/* sd_notify() rejects an empty address; treat it as "not under systemd". */
	if (sock == NULL || *sock == '\0')
		return;
	n->enabled = 1;
	/* Keep the variables: sd_notify() needs NOTIFY_SOCKET on every call. */
	r = sd_watchdog_enabled(0, &usec);
	if (r < 0)
		log_warn("notify: sd_watchdog_enabled: %s; no watchdog pings",
		    strerror(-r));
	else if (r > 0)
		n->watchdog_usec = usec;
	log_debug("notify: socket %s, watchdog %" PRIu64 " us", sock,
	    n->watchdog_usec);
}

static int send_state(const char *what, const char *state)
{
	int r = sd_notify(0, state);

	if (r < 0) {
		log_warn("notify: sd_notify(%s): %s", what, strerror(-r));
		errno = -r;
		return -1;
	}
	return 0;
}

int notify_ready(const struct notify *n)
{
	return n->enabled ? send_state("READY=1", "READY=1") : 0;
}

int notify_reloading(const struct notify *n)
{
	char state[64];
	struct timespec ts;

	if (!n->enabled)
		return 0;
	/*
	 * systemd 253+ (Type=notify-reload) matches MONOTONIC_USEC against the
	 * reload request; 252 ignores it. Sending it costs nothing.
	 */
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		fatalx("clock_gettime(CLOCK_MONOTONIC): %s", strerror(errno));
	snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64,
	    (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000);
	return send_state("RELOADING=1", state);
}

int notify_stopping(const struct notify *n)
{
	return n->enabled ? send_state("STOPPING=1", "STOPPING=1") : 0;
}

int notify_status(const struct notify *n, const char *fmt, ...)
{
	va_list ap;
	char *state;
	int r;

	if (!n->enabled)
		return 0;
	va_start(ap, fmt);
	r = vasprintf(&state, fmt, ap);
	va_end(ap);
	if (r < 0) {
		log_warn("notify: STATUS: vasprintf: %s", strerror(errno));
		return -1;
	}
	/* One assignment per line: a newline would start another one. */
	for (char *p = state; *p != '\0'; p++)
		if (*p == '\n')
			*p = ' ';
	r = sd_notifyf(0, "STATUS=%s", state);
	free(state);
	if (r < 0) {
		log_warn("notify: sd_notify(STATUS=): %s", strerror(-r));
		errno = -r;
		return -1;
	}
	return 0;
}

int notify_watchdog(const struct notify *n)
{
	if (!n->enabled || n->watchdog_usec == 0)
		return 0;
	return send_state("WATCHDOG=1", "WATCHDOG=1");
}

uint64_t notify_watchdog_interval_usec(const struct notify *n)
{
	return n->enabled ? n->watchdog_usec : 0;
}

static int scrubbed(const char *entry)
{
	static const char *const names[] = {
		"NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID=",
		/* The token reaches a worker over its socket, never its environment. */
		"TGRUN_TOKEN=", "CREDENTIALS_DIRECTORY=",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strncmp(entry, names[i], strlen(names[i])) == 0)
			return 1;
	return 0;
}

void notify_scrub_env(void)
{
	char **src, **dst;

	/*
	 * Edit environ in place rather than calling unsetenv(): the master may
	 * have other threads (curl's resolver) when it forks, so the child may
	 * only do async-signal-safe work, and unsetenv() takes glibc's
	 * environment lock. The dropped strings leak, which exec() makes moot.
	 */
	if (environ == NULL)
		return;
	for (src = dst = environ; *src != NULL; src++)
		if (!scrubbed(*src))
			*dst++ = *src;
	*dst = NULL;
}
