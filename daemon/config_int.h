/* Private to daemon/config*.c: the key table's types, one load's state, and what each file offers the others. */
#ifndef TGRUN_CONFIG_INT_H
#define TGRUN_CONFIG_INT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <ini.h>

#include "config.h"

/* How a key's value is parsed and where it goes in struct config. */
enum ktype {
	KT_NAME,	/* char *, bot name */
	KT_TOKEN,	/* char *, never echoed */
	KT_URL,		/* char *, http(s) URL without trailing '/' */
	KT_PATH,	/* char *, made absolute */
	KT_FILE,	/* char *, made absolute, must be a readable regular file */
	KT_DIR,		/* char *, made absolute, must be a directory */
	KT_CHOICE,	/* int, index of the value in `accepted` ("a, b, c") */
	KT_PROXY,	/* char *, a proxy URL; may hold a password: never echoed */
	KT_INT,		/* int, min..max */
	KT_INT_AUTO,	/* int, "auto" (stored as 0) or min..max */
	KT_DURATION,	/* int64_t ms, min..max */
	KT_SECONDS,	/* int64_t ms, whole seconds, min..max */
	KT_SIZE,	/* size_t bytes, min..max */
	KT_BOOL,	/* int */
	KT_UPDATES,	/* char *, JSON array of update type names */
	KT_SEQ,		/* unsigned, CFG_SEQ_* bits */
	KT_BYPASS,	/* uint32_t, bits of enum update_type */
	KT_SYNC,	/* enum cfg_sync, index in `accepted` ("off, normal, full") */
	KT_LEVEL,	/* int, enum log_level */
	KT_LISTEN,	/* char *, "off" (NULL) or HOST:PORT / [V6]:PORT */
	KT_RATE,	/* struct cfg_rate, "N/s" or "N/m" with N in min..max */
	KT_NATS,	/* char *, NATS URLs, comma separated; may hold passwords: never echoed */
	KT_NODE,	/* char *, a cluster node name */
};

struct key {
	const char *section;
	const char *name;
	enum ktype type;
	size_t off;
	int64_t min, max;
	const char *accepted;	/* NULL: said from type and range */
};

/* Room in struct loader for the table (config.c checks it fits). */
#define CONFIG_MAX_KEYS 64

#define CONFIG_SECTION_LIST "bot, poll, workers, order, limits, journal, control, " \
	"metrics, api, throttle, log, cluster, handler"

/* State of one config_load(). */
struct loader {
	struct config *cfg;
	const char *file;	/* as given by the caller, for messages */
	FILE *fp;
	char *err;
	size_t errlen;
	int failed;
	int err_line;		/* line of the error in err, 0 = whole file */
	int line;		/* physical line inih is working on */
	int indented;		/* that line starts with a blank */
	char prev_name[INI_MAX_LINE];	/* last key of this section, "" after [x] */
	int prev_line;
	char *list_text;	/* value of the last list key, for continuations */
	size_t handler_cap;
	int seen[CONFIG_MAX_KEYS];	/* line where each key was set, 0 = not yet */
};

/* config.c: the table, the loader's one error message, paths and names. */
extern const struct key config_keys[];
extern const size_t config_nkeys;
/* The key [section] name, NULL if there is none. */
const struct key *config_key_find(const char *section, const char *name);
/* 1 if `name` (n bytes, not NUL-terminated) is a section. */
int config_section_known(const char *name, size_t n);
/*
 * Record the first error: "FILE:LINE: " (LINE > 0) or "FILE: ", then the
 * message. Returns 0, what inih takes for an error.
 */
int config_fail(struct loader *ld, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* config_fail() at the current line with "[section] key: " first; returns -1. */
int config_fail_key(struct loader *ld, const struct key *k, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* `path` joined to the current directory if relative; NULL + errno. */
char *config_path_absolute(const char *path);
/* A path from the file: relative to the file's directory. NULL + errno. */
char *config_path_value(const struct loader *ld, const char *path);
/* 1 if `s` is accepted as a bot name. */
int config_name_ok(const char *s);
/* 1 if `s` is accepted as a cluster node name. */
int config_node_ok(const char *s);

/* config_ini.c: run inih over ld->fp, setting each key (config_value_*()). */
void config_ini_read(struct loader *ld);

/* config_value.c: set, parse and validate one value. 0, or -1 after config_fail(). */
int config_value_set(struct loader *ld, const struct key *k, const char *value);
/* A list key's whole text so far (its first line and continuations). */
int config_value_list(struct loader *ld, const struct key *k, const char *value);

#endif
