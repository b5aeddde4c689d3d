/* Logging to stderr: levels, process role, journald priorities, secret redaction. */
#ifndef TGRUN_LOG_H
#define TGRUN_LOG_H

#include <stdarg.h>
#include <stdint.h>

enum log_level {
	LOG_LVL_ERR = 3,
	LOG_LVL_WARN = 4,
	LOG_LVL_NOTICE = 5,
	LOG_LVL_INFO = 6,
	LOG_LVL_DEBUG = 7,
};

/* Role is "master", "worker" etc.; slot >= 0 is appended ("worker 2"). */
void log_init(const char *role, int slot);
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Parse "error", "warn", "notice", "info", "debug"; -1 if unknown. */
int log_level_parse(const char *s);
/*
 * Register a secret (the bot token). Every occurrence in a formatted line is
 * replaced by "<redacted>" before it is written. The string is copied.
 */
void log_add_secret(const char *secret);

/*
 * One call writes exactly one line: control characters in the formatted
 * text are escaped (\n, \t, \xHH; see escape.h), secrets redacted.
 */
void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

#define log_err(...)    log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)  do { if (log_get_level() >= LOG_LVL_DEBUG) \
		log_msg(LOG_LVL_DEBUG, __VA_ARGS__); } while (0)

/*
 * At most one line per interval for one kind of event (accept() failing,
 * say), so that a storm of them cannot flood the log.
 */
struct log_rate {
	int64_t next_ms;	/* lines are held back before this (clock_ms()) */
	unsigned long held;	/* events held back since the last line */
};
/*
 * 1 if this event may be logged now, with *held set to the number held
 * back before it; 0 if it is only counted.
 */
int log_rate_pass(struct log_rate *r, int64_t interval_ms, unsigned long *held);

/* For the impossible: log with the function name and abort. */
void fatal_at(const char *func, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
#define fatalx(...) fatal_at(__func__, __VA_ARGS__)

#endif
