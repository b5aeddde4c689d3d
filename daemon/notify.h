/* The sd_notify protocol for the master: readiness, reload, stop, status, watchdog. */
#ifndef TGRUN_NOTIFY_H
#define TGRUN_NOTIFY_H

#include <stdint.h>

/*
 * Filled by notify_init(); the fields are private to notify.c. The struct is
 * public only so that the master can embed it.
 */
struct notify {
	int enabled;		/* $NOTIFY_SOCKET was set: we run under systemd */
	uint64_t watchdog_usec;	/* WatchdogSec= in µs; 0: no watchdog */
};

/*
 * Read $NOTIFY_SOCKET and the watchdog settings ($WATCHDOG_USEC, honoured only
 * if $WATCHDOG_PID is unset or names this process). Call once in the master
 * before forking anything. The variables stay set, because sd_notify() reads
 * $NOTIFY_SOCKET on every call: children must call notify_scrub_env().
 * A malformed $WATCHDOG_USEC is logged and leaves the watchdog off.
 */
void notify_init(struct notify *n);

/*
 * Each sends one datagram to the service manager and returns 0, or -1 with
 * errno set if it could not be sent (already logged: callers may ignore it;
 * nothing here is worth stopping the daemon for). All of them are no-ops
 * returning 0 when $NOTIFY_SOCKET was unset at notify_init(). None blocks.
 */

/* READY=1: start-up (or a reload) is complete. */
int notify_ready(const struct notify *n);
/*
 * RELOADING=1 with MONOTONIC_USEC=<CLOCK_MONOTONIC now, µs>; follow with
 * notify_ready() when the reload is done (or has failed and the old
 * configuration stays in force).
 */
int notify_reloading(const struct notify *n);
/* STOPPING=1: a graceful stop has begun. */
int notify_stopping(const struct notify *n);
/*
 * STATUS=<printf-style text>, shown by `systemctl status`. Newlines in the
 * text become spaces, so it cannot smuggle in other assignments.
 */
int notify_status(const struct notify *n, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* WATCHDOG=1; a no-op returning 0 when the watchdog is off. */
int notify_watchdog(const struct notify *n);

/*
 * WatchdogSec= in µs, 0 if the watchdog is off. The master pings at half
 * this interval, and only while its loop turns and its workers answer.
 */
uint64_t notify_watchdog_interval_usec(const struct notify *n);

/*
 * Remove NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the environment,
 * so that an exec'd worker cannot talk to systemd in the master's name, and
 * TGRUN_TOKEN and CREDENTIALS_DIRECTORY, so that no program a handler starts
 * inherits the way to the token. Meant
 * for the child between fork() and exec(): it is async-signal-safe (no locks,
 * no allocation). Never call it in the master itself.
 */
void notify_scrub_env(void);

#endif
