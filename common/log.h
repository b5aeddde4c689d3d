/* Logging to stderr: levels, process role, journald priorities, secret redaction. */
#ifndef TGRUN_LOG_H
#define TGRUN_LOG_H

#include <stdarg.h>

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

/* For the impossible: log with the function name and abort. */
void fatal_at(const char *func, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
#define fatalx(...) fatal_at(__func__, __VA_ARGS__)

#endif
