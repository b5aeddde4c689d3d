/* The bot's INI config: parsing, validation and defaults. */
#include "config.h"
#include "units.h"

#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "keys.h"
#include "log.h"

#define SECONDS		1000LL
#define MINUTES		(60 * SECONDS)
#define DAY_MS		(24 * 60 * MINUTES)
#define KIB		((int64_t)1024)
#define MIB		(1024 * KIB)

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
	KT_SYNC,	/* enum cfg_sync */
	KT_LEVEL,	/* int, enum log_level */
	KT_LISTEN,	/* char *, "off" (NULL) or HOST:PORT / [V6]:PORT */
	KT_RATE,	/* struct cfg_rate, "N/s" or "N/m" with N in min..max */
};

struct key {
	const char *section;
	const char *name;
	enum ktype type;
	size_t off;
	int64_t min, max;
	const char *accepted;	/* NULL: said from type and range */
};

#define F(field) offsetof(struct config, field)

static const struct key keys[] = {
	{ "bot", "name", KT_NAME, F(name), 0, 0,
	    "1..64 characters of A-Z a-z 0-9 . _ - not starting with ." },
	{ "bot", "token_file", KT_PATH, F(token_file), 0, 0,
	    "path of a file holding the token" },
	{ "bot", "token", KT_TOKEN, F(token), 0, 0,
	    "the bot token from @BotFather" },
	{ "bot", "api_url", KT_URL, F(api_url), 0, 0,
	    "a URL starting with http:// or https://" },

	{ "poll", "timeout", KT_SECONDS, F(poll_timeout_ms), 0, 50 * SECONDS, NULL },
	{ "poll", "limit", KT_INT, F(poll_limit), 1, 100, NULL },
	{ "poll", "allowed_updates", KT_UPDATES, F(allowed_updates), 0, 0, NULL },
	{ "poll", "delete_webhook", KT_BOOL, F(delete_webhook), 0, 0, NULL },

	{ "workers", "count", KT_INT_AUTO, F(worker_count), 1, 256, NULL },
	{ "workers", "handler", KT_FILE, F(handler), 0, 0,
	    "path of the handler .so" },
	{ "workers", "stack_size", KT_SIZE, F(stack_size), 16 * KIB, 64 * MIB, NULL },
	{ "workers", "max_updates", KT_INT, F(max_updates), 0, INT_MAX, NULL },

	{ "order", "sequentialize", KT_SEQ, F(sequentialize), 0, 0,
	    "chat, user, chat_thread, none" },
	{ "order", "bypass", KT_BYPASS, F(bypass), 0, 0, NULL },

	{ "limits", "concurrency", KT_INT, F(concurrency), 1, 100000, NULL },
	{ "limits", "worker_concurrency", KT_INT_AUTO, F(worker_concurrency),
	    1, 100000, NULL },
	{ "limits", "max_pending", KT_INT, F(max_pending), 1, INT_MAX, NULL },
	{ "limits", "update_timeout", KT_DURATION, F(update_timeout_ms), 1, DAY_MS, NULL },
	{ "limits", "shutdown_timeout", KT_DURATION, F(shutdown_timeout_ms), 0, DAY_MS, NULL },
	{ "limits", "max_attempts", KT_INT, F(max_attempts), 1, 100, NULL },
	{ "limits", "kill_grace", KT_DURATION, F(kill_grace_ms), 0, DAY_MS, NULL },
	{ "limits", "heartbeat_timeout", KT_DURATION, F(heartbeat_timeout_ms),
	    1, DAY_MS, NULL },

	{ "journal", "path", KT_PATH, F(journal_path), 0, 0, "path of the journal database" },
	{ "journal", "enabled", KT_BOOL, F(journal_enabled), 0, 0, NULL },
	{ "journal", "sync", KT_SYNC, F(journal_sync), 0, 0, "off, normal, full" },

	{ "control", "socket", KT_PATH, F(control_socket), 0, 0,
	    "path of the control socket (at most 107 bytes)" },
	{ "control", "enabled", KT_BOOL, F(control_enabled), 0, 0, NULL },

	{ "metrics", "listen", KT_LISTEN, F(metrics_listen), 0, 65535,
	    "off, or ADDRESS:PORT with an IPv4 address, [IPv6] or localhost and "
	    "a port 0..65535 (0 = any free port), e.g. 127.0.0.1:9464" },

	{ "api", "timeout", KT_DURATION, F(api_timeout_ms), 1, DAY_MS, NULL },
	{ "api", "retries", KT_INT, F(api_retries), 0, 20, NULL },
	{ "api", "retry_after_max", KT_DURATION, F(api_retry_after_max_ms), 0, DAY_MS, NULL },
	{ "api", "retry_ambiguous", KT_BOOL, F(api_retry_ambiguous), 0, 0, NULL },
	/* The order of the choices is enum botapi_http's. */
	{ "api", "http_version", KT_CHOICE, F(api_http_version), 0, 0, "auto, 1.1, 2" },
	{ "api", "ca_file", KT_FILE, F(api_ca_file), 0, 0,
	    "path of a PEM file of CA certificates" },
	{ "api", "ca_path", KT_DIR, F(api_ca_path), 0, 0,
	    "path of a directory of hashed CA certificates (c_rehash)" },
	{ "api", "proxy", KT_PROXY, F(api_proxy), 0, 0,
	    "a URL http://, https://, socks5:// or socks5h://[USER:PASSWORD@]HOST:PORT" },

	{ "log", "level", KT_LEVEL, F(log_level), 0, 0, "error, warn, notice, info, debug" },

	{ "throttle", "enabled", KT_BOOL, F(throttle_enabled), 0, 0, NULL },
	{ "throttle", "global", KT_RATE, F(throttle_global), 1, 1000000, NULL },
	{ "throttle", "chat", KT_RATE, F(throttle_chat), 1, 1000000, NULL },
	{ "throttle", "group", KT_RATE, F(throttle_group), 1, 1000000, NULL },
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const char *const sections[] = {
	"bot", "poll", "workers", "order", "limits", "journal", "control", "metrics",
	"api", "throttle", "log", "handler",
};
#define SECTION_LIST "bot, poll, workers, order, limits, journal, control, metrics, " \
	"api, throttle, log, handler"
#define BOOL_LIST "yes, no, true, false, on, off, 1, 0"

_Static_assert(UPD__COUNT <= 32, "bypass is a 32-bit set of update types");

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
	int seen[NKEYS];	/* line where each key was set, 0 = not yet */
};

static char *read_line(char *str, int num, void *stream);
static void classify_line(struct loader *ld, const char *s);
static int on_value(void *user, const char *section, const char *name,
    const char *value);
static int on_continuation(struct loader *ld, const char *section,
    const char *name, const char *value);
static int set_value(struct loader *ld, const struct key *k, const char *value);
static int set_string(struct loader *ld, const struct key *k, const char *value);
static int set_number(struct loader *ld, const struct key *k, const char *value);
static int set_list(struct loader *ld, const struct key *k, const char *value);
static int set_file_path(struct loader *ld, const struct key *k,
    const char *value);
static int set_listen(struct loader *ld, const struct key *k, const char *value);
static char *default_in_dir(const char *env, const char *file, const char *name,
    const char *suffix);
static int handler_kv_set(struct loader *ld, const char *name, const char *value);
static int finish(struct loader *ld);
static int fail(struct loader *ld, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail_key(struct loader *ld, const struct key *k, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say_accepted(const struct key *k, char *buf, size_t len);
static int list_next(const char **p, char *buf, size_t len);
static int update_type_lookup(const char *name);
static char *path_absolute(const char *path);
static int name_ok(const char *s);
static void *field(struct config *cfg, const struct key *k);
static int choice_index(const char *list, const char *value);
static int set_proxy(struct loader *ld, const struct key *k, const char *value);

struct config *
config_load(const char *path, char *err, size_t errlen)
{
	struct loader ld;
	struct config *cfg;
	struct stat st;
	int r;

	memset(&ld, 0, sizeof(ld));
	ld.file = path;
	ld.err = err;
	ld.errlen = errlen;
	if (errlen > 0)
		err[0] = '\0';

	if ((cfg = calloc(1, sizeof(*cfg))) == NULL) {
		fail(&ld, 0, "cannot load: %s", strerror(errno));
		return NULL;
	}
	ld.cfg = cfg;
	cfg->poll_timeout_ms = 30 * SECONDS;
	cfg->poll_limit = 100;
	cfg->stack_size = 256 * KIB;
	cfg->sequentialize = CFG_SEQ_CHAT;
	cfg->concurrency = 500;
	cfg->max_pending = 10000;
	cfg->update_timeout_ms = 60 * SECONDS;
	cfg->shutdown_timeout_ms = 30 * SECONDS;
	cfg->max_attempts = 3;
	cfg->kill_grace_ms = 5 * SECONDS;
	cfg->heartbeat_timeout_ms = 10 * SECONDS;
	cfg->journal_enabled = 1;
	cfg->journal_sync = CFG_SYNC_FULL;
	cfg->control_enabled = 1;
	cfg->api_timeout_ms = 30 * SECONDS;
	cfg->api_retries = 3;
	cfg->api_retry_after_max_ms = 30 * SECONDS;
	/* Telegram's documented flood limits. */
	cfg->throttle_global = (struct cfg_rate){ 30, SECONDS };
	cfg->throttle_chat = (struct cfg_rate){ 1, SECONDS };
	cfg->throttle_group = (struct cfg_rate){ 20, MINUTES };
	cfg->log_level = LOG_LVL_INFO;
	if ((cfg->api_url = strdup("https://api.telegram.org")) == NULL ||
	    (cfg->path = path_absolute(path)) == NULL) {
		fail(&ld, 0, "cannot load: %s", strerror(errno));
		goto fail;
	}

	if ((ld.fp = fopen(path, "re")) == NULL) {
		fail(&ld, 0, "cannot open: %s", strerror(errno));
		goto fail;
	}
	if (fstat(fileno(ld.fp), &st) == -1) {
		fail(&ld, 0, "cannot open: %s", strerror(errno));
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		fail(&ld, 0, "cannot open: %s", strerror(EISDIR));
		goto fail;
	}

	/* The reader counts physical lines: this inih's handler gets no line. */
	r = ini_parse_stream(read_line, &ld, on_value, &ld);
	if (r > 0 && (!ld.failed || r < ld.err_line)) {
		/* inih found a line it cannot parse before any error of ours. */
		ld.failed = 0;
		fail(&ld, r, "syntax error (accepted: [section], key = value, "
		    "; comment, # comment)");
	} else if (r == -2 && !ld.failed) {
		fail(&ld, 0, "cannot load: %s", strerror(ENOMEM));
	}
	if (!ld.failed && ferror(ld.fp))
		fail(&ld, 0, "cannot read: %s", strerror(errno));
	fclose(ld.fp);
	ld.fp = NULL;
	if (ld.failed || finish(&ld) == -1)
		goto fail;

	free(ld.list_text);
	if (cfg->token != NULL)
		log_warn("%s:%d: [bot] token: a token in the config file is "
		    "discouraged; use LoadCredential= or token_file",
		    path, cfg->token_line);
	return cfg;

fail:
	if (ld.fp != NULL)
		fclose(ld.fp);
	free(ld.list_text);
	config_free(cfg);
	return NULL;
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->path);
	free(cfg->name);
	free(cfg->token_file);
	if (cfg->token != NULL) {
		explicit_bzero(cfg->token, strlen(cfg->token));
		free(cfg->token);
	}
	free(cfg->api_url);
	free(cfg->allowed_updates);
	free(cfg->handler);
	free(cfg->journal_path);
	free(cfg->control_socket);
	free(cfg->metrics_listen);
	free(cfg->api_ca_file);
	free(cfg->api_ca_path);
	if (cfg->api_proxy != NULL) {
		explicit_bzero(cfg->api_proxy, strlen(cfg->api_proxy));
		free(cfg->api_proxy);
	}
	for (size_t i = 0; i < cfg->handler_nkv; i++) {
		free(cfg->handler_kv[i].key);
		free(cfg->handler_kv[i].value);
	}
	free(cfg->handler_kv);
	free(cfg);
}

const char *
config_handler_get(const struct config *cfg, const char *key)
{
	for (size_t i = 0; i < cfg->handler_nkv; i++)
		if (strcmp(cfg->handler_kv[i].key, key) == 0)
			return cfg->handler_kv[i].value;
	return NULL;
}

/*
 * inih's reader. Counting lines here gives on_value() the line number; inih
 * only counts what it was handed, so a line longer than its buffer (which it
 * would silently cut in two) is refused here, as are unknown section headers
 * (inih calls back per key only, so an empty [typo] would pass unseen).
 * Returning NULL after an error ends the parse at the first error.
 */
static char *
read_line(char *str, int num, void *stream)
{
	struct loader *ld = stream;
	size_t len;
	int c;

	if (ld->failed || fgets(str, num, ld->fp) == NULL)
		return NULL;
	ld->line++;
	len = strlen(str);
	if (len > 0 && str[len - 1] != '\n' && !feof(ld->fp)) {
		if (len != (size_t)num - 1) {
			fail(ld, ld->line, "NUL byte in line (accepted: a text file)");
			return NULL;
		}
		c = getc(ld->fp);
		if (c != '\n' && c != EOF) {
			fail(ld, ld->line, "line too long (accepted: lines of at "
			    "most %d characters; lists and [handler] values may "
			    "continue on indented lines)", num - 1);
			return NULL;
		}
	}
	classify_line(ld, str);
	return ld->failed ? NULL : str;
}

/* Note what inih is about to see in line ld->line, checking section names. */
static void
classify_line(struct loader *ld, const char *s)
{
	const char *end;
	size_t n;

	if (ld->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3;
	ld->indented = (*s == ' ' || *s == '\t');
	if (*s != '[')
		return;
	/* Like inih: the name ends at ']', unless " ;" starts a comment first. */
	for (end = s + 1; *end != '\0' && *end != ']'; end++)
		if (*end == ';' && (end[-1] == ' ' || end[-1] == '\t'))
			return;		/* inih reports the syntax error */
	if (*end != ']')
		return;
	n = (size_t)(end - (s + 1));
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		if (strlen(sections[i]) == n && strncmp(s + 1, sections[i], n) == 0) {
			ld->prev_name[0] = '\0';
			ld->prev_line = 0;
			return;
		}
	}
	fail(ld, ld->line, "unknown section [%.*s] (accepted: " SECTION_LIST ")",
	    (int)n, s + 1);
}

static int
on_value(void *user, const char *section, const char *name, const char *value)
{
	struct loader *ld = user;
	const struct key *k = NULL;
	size_t i;
	int known = 0;

	if (ld->failed)
		return 0;
	if (*section == '\0')
		return fail(ld, ld->line, "%s: key outside any section (accepted: "
		    "keys after a [section] line: " SECTION_LIST ")", name);
	for (i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		known |= strcmp(section, sections[i]) == 0;
	if (!known)		/* an indented header that classify_line() let by */
		return fail(ld, ld->line, "unknown section [%s] (accepted: "
		    SECTION_LIST ")", section);
	if (*name == '\0')
		return fail(ld, ld->line, "[%s]: empty key name (accepted: "
		    "key = value)", section);
	/* inih hands an indented line after a key to us as more of its value. */
	if (ld->indented && ld->prev_line != 0 && ld->prev_line != ld->line &&
	    strcmp(name, ld->prev_name) == 0)
		return on_continuation(ld, section, name, value);

	snprintf(ld->prev_name, sizeof(ld->prev_name), "%s", name);
	ld->prev_line = ld->line;
	if (strcmp(section, "handler") == 0)
		return handler_kv_set(ld, name, value) == 0;

	for (i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].section, section) == 0 &&
		    strcmp(keys[i].name, name) == 0) {
			k = &keys[i];
			break;
		}
	}
	if (k == NULL) {
		char list[512];
		size_t n = 0;

		list[0] = '\0';
		for (i = 0; i < NKEYS; i++)
			if (strcmp(keys[i].section, section) == 0 && n < sizeof(list))
				n += (size_t)snprintf(list + n, sizeof(list) - n,
				    "%s%s", n ? ", " : "", keys[i].name);
		return fail(ld, ld->line, "[%s] %s: unknown key (accepted: %s)",
		    section, name, list);
	}
	if (ld->seen[i] != 0) {
		fail_key(ld, k, "duplicate key, first set on line %d "
		    "(accepted: each key once)", ld->seen[i]);
		return 0;
	}
	ld->seen[i] = ld->line;
	return set_value(ld, k, value) == 0;
}

/* An indented line continuing the previous key: lists and [handler] only. */
static int
on_continuation(struct loader *ld, const char *section, const char *name,
    const char *value)
{
	const struct key *k = NULL;
	struct cfg_kv *kv = NULL;
	char *s;
	size_t n;

	if (strcmp(section, "handler") == 0) {
		for (n = 0; n < ld->cfg->handler_nkv; n++)
			if (strcmp(ld->cfg->handler_kv[n].key, name) == 0)
				kv = &ld->cfg->handler_kv[n];
		if (kv == NULL)
			fatalx("continued [handler] %s was never set", name);
		if (asprintf(&s, "%s\n%s", kv->value, value) == -1)
			return fail(ld, ld->line, "cannot load: %s", strerror(ENOMEM));
		free(kv->value);
		kv->value = s;
		return 1;
	}
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].section, section) == 0 &&
		    strcmp(keys[i].name, name) == 0)
			k = &keys[i];
	if (k == NULL)
		fatalx("continued [%s] %s is not a key", section, name);
	if (k->type != KT_UPDATES && k->type != KT_SEQ && k->type != KT_BYPASS) {
		fail_key(ld, k, "indented line continues the value (accepted: "
		    "one-line values; only lists and [handler] values continue "
		    "on indented lines)");
		return 0;
	}
	/* set_value() kept the list so far; a trailing comma may end it. */
	n = strlen(ld->list_text);
	while (n > 0 && (ld->list_text[n - 1] == ' ' || ld->list_text[n - 1] == '\t'))
		n--;
	if (asprintf(&s, "%.*s%s%s", (int)n, ld->list_text,
	    n == 0 || ld->list_text[n - 1] == ',' ? "" : ",", value) == -1)
		return fail(ld, ld->line, "cannot load: %s", strerror(ENOMEM));
	free(ld->list_text);
	ld->list_text = s;
	return set_list(ld, k, s) == 0;
}

static int
set_value(struct loader *ld, const struct key *k, const char *value)
{
	char acc[160];

	if (*value == '\0' && k->type != KT_UPDATES) {
		say_accepted(k, acc, sizeof(acc));
		return fail_key(ld, k, "empty value (accepted: %s)", acc);
	}
	switch (k->type) {
	case KT_NAME:
	case KT_TOKEN:
	case KT_URL:
	case KT_PATH:
		return set_string(ld, k, value);
	case KT_FILE:
	case KT_DIR:
		return set_file_path(ld, k, value);
	case KT_PROXY:
		return set_proxy(ld, k, value);
	case KT_LISTEN:
		return set_listen(ld, k, value);
	case KT_UPDATES:
	case KT_SEQ:
	case KT_BYPASS:
		free(ld->list_text);
		if ((ld->list_text = strdup(value)) == NULL)
			return fail(ld, ld->line, "cannot load: %s", strerror(errno));
		return set_list(ld, k, value);
	default:
		return set_number(ld, k, value);
	}
}

/* Keys whose value is kept as a string. */
static int
set_string(struct loader *ld, const struct key *k, const char *value)
{
	char **dst = field(ld->cfg, k);
	char *s;
	size_t n;

	switch (k->type) {
	case KT_NAME:
		if (!name_ok(value))
			return fail_key(ld, k, "\"%s\" is not accepted (accepted: %s)",
			    value, k->accepted);
		s = strdup(value);
		break;
	case KT_TOKEN:
		/* The value must never reach a message: say only what is wrong. */
		for (const char *p = value; *p != '\0'; p++)
			if (*p <= ' ' || *p == '/' || *p == 0x7f)
				return fail_key(ld, k, "contains a blank, control or '/' "
				    "character (accepted: %s)", k->accepted);
		ld->cfg->token_line = ld->line;
		s = strdup(value);
		break;
	case KT_URL:
		n = strlen(value);
		while (n > 0 && value[n - 1] == '/')
			n--;
		if ((strncmp(value, "http://", 7) != 0 &&
		    strncmp(value, "https://", 8) != 0) ||
		    n <= (size_t)(value[4] == 's' ? 8 : 7) ||
		    strpbrk(value, " \t\"\\") != NULL)
			return fail_key(ld, k, "\"%s\" is not accepted (accepted: %s)",
			    value, k->accepted);
		s = strndup(value, n);
		break;
	default:		/* KT_PATH */
		s = path_absolute(value);
		break;
	}
	if (s == NULL)
		return fail_key(ld, k, "%s", strerror(errno));
	free(*dst);
	*dst = s;
	return 0;
}

static int
set_file_path(struct loader *ld, const struct key *k, const char *value)
{
	struct stat st;
	char *abs;
	int fd;

	if ((abs = path_absolute(value)) == NULL)
		return fail_key(ld, k, "%s: %s", value, strerror(errno));
	if (stat(abs, &st) == -1) {
		fail_key(ld, k, "%s: %s", value, strerror(errno));
		goto fail;
	}
	if (k->type == KT_FILE ? !S_ISREG(st.st_mode) : !S_ISDIR(st.st_mode)) {
		fail_key(ld, k, "%s: not a %s (accepted: %s)", value,
		    k->type == KT_FILE ? "regular file" : "directory", k->accepted);
		goto fail;
	}
	if ((fd = open(abs, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1) {
		fail_key(ld, k, "%s: %s", value, strerror(errno));
		goto fail;
	}
	close(fd);
	free(*(char **)field(ld->cfg, k));
	*(char **)field(ld->cfg, k) = abs;
	return 0;
fail:
	free(abs);
	return -1;
}

/* Integers, durations, sizes, booleans and one-word enums. */
static int
set_number(struct loader *ld, const struct key *k, const char *value)
{
	void *dst = field(ld->cfg, k);
	char acc[160];
	const char *what = "a number";
	int64_t v = 0, period = 0;
	int r, b;

	say_accepted(k, acc, sizeof(acc));
	switch (k->type) {
	case KT_BOOL:
		if (units_parse_bool(value, &b) == -1)
			return fail_key(ld, k, "\"%s\" is not accepted (accepted: %s)",
			    value, acc);
		*(int *)dst = b;
		return 0;
	case KT_SYNC:
		if (strcmp(value, "off") == 0)
			*(enum cfg_sync *)dst = CFG_SYNC_OFF;
		else if (strcmp(value, "normal") == 0)
			*(enum cfg_sync *)dst = CFG_SYNC_NORMAL;
		else if (strcmp(value, "full") == 0)
			*(enum cfg_sync *)dst = CFG_SYNC_FULL;
		else
			return fail_key(ld, k, "\"%s\" is not accepted (accepted: %s)",
			    value, acc);
		return 0;
	case KT_CHOICE:
		if ((b = choice_index(k->accepted, value)) == -1)
			return fail_key(ld, k, "\"%s\" is not accepted (accepted: %s)",
			    value, acc);
		*(int *)dst = b;
		return 0;
	case KT_LEVEL:
		if ((b = log_level_parse(value)) == -1)
			return fail_key(ld, k, "\"%s\" is not accepted (accepted: %s)",
			    value, acc);
		*(int *)dst = b;
		return 0;
	case KT_INT_AUTO:
		if (strcmp(value, "auto") == 0) {
			*(int *)dst = 0;
			return 0;
		}
		/* FALLTHROUGH */
	case KT_INT:
		r = units_parse_int(value, &v);
		break;
	case KT_SIZE:
		what = "a size";
		r = units_parse_size(value, &v);
		break;
	case KT_RATE:
		what = "a rate";
		r = units_parse_rate(value, &v, &period);
		break;
	default:		/* KT_DURATION, KT_SECONDS */
		what = "a duration";
		r = units_parse_duration(value, &v);
		if (r == 0 && k->type == KT_SECONDS && v % SECONDS != 0)
			return fail_key(ld, k, "\"%s\" is not a whole number of "
			    "seconds (accepted: %s)", value, acc);
		break;
	}
	if (r == -1)
		return fail_key(ld, k, "\"%s\" is not %s (accepted: %s)", value,
		    what, acc);
	if (r == -2 || v < k->min || v > k->max)
		return fail_key(ld, k, "\"%s\" is out of range (accepted: %s)",
		    value, acc);
	if (k->type == KT_SIZE)
		*(size_t *)dst = (size_t)v;
	else if (k->type == KT_RATE)
		*(struct cfg_rate *)dst = (struct cfg_rate){ (int)v, period };
	else if (k->type == KT_DURATION || k->type == KT_SECONDS)
		*(int64_t *)dst = v;
	else
		*(int *)dst = (int)v;
	return 0;
}

/* allowed_updates, sequentialize and bypass: comma-separated lists. */
static int
set_list(struct loader *ld, const struct key *k, const char *value)
{
	static const char *const seq_names[] = { "chat", "user", "chat_thread" };
	char item[64], acc[600], json[600];
	const char *p = value;
	uint32_t bits = 0;
	size_t jn = 0;
	int t, n = 0, none = 0;

	say_accepted(k, acc, sizeof(acc));
	if (value[strspn(value, " \t")] == '\0' && k->type == KT_UPDATES)
		value = "";	/* "[]": Telegram's default set, sent explicitly */
	json[jn++] = '[';
	while (*value != '\0' && list_next(&p, item, sizeof(item))) {
		n++;
		/* "a, b," is "a, b": a line may end with a comma before an indented one. */
		if (*item == '\0' && p == NULL && n > 1)
			break;
		if (*item == '\0')
			return fail_key(ld, k, "empty list item in \"%s\" (accepted: "
			    "a comma-separated list of %s)", value, acc);
		if (strcmp(item, "none") == 0 && k->type != KT_UPDATES) {
			none = 1;
			continue;
		}
		if (k->type == KT_SEQ) {
			for (t = 0; t < 3; t++)
				if (strcmp(item, seq_names[t]) == 0)
					break;
			if (t == 3)
				return fail_key(ld, k, "\"%s\" is not accepted "
				    "(accepted: %s)", item, acc);
			bits |= 1u << t;
			continue;
		}
		if ((t = update_type_lookup(item)) == -1)
			return fail_key(ld, k, "\"%s\" is not an update type "
			    "(accepted: %s)", item, acc);
		if (k->type == KT_UPDATES && !(bits & (1u << t)))
			jn += (size_t)snprintf(json + jn, sizeof(json) - jn, "%s\"%s\"",
			    bits ? "," : "", item);
		bits |= 1u << t;
	}
	if (none && n > 1)
		return fail_key(ld, k, "\"none\" must stand alone (accepted: %s)", acc);

	if (k->type == KT_SEQ) {
		_Static_assert(CFG_SEQ_CHAT == 1 << 0 && CFG_SEQ_USER == 1 << 1 &&
		    CFG_SEQ_CHAT_THREAD == 1 << 2, "seq_names order");
		*(unsigned *)field(ld->cfg, k) = bits;
	} else if (k->type == KT_BYPASS) {
		*(uint32_t *)field(ld->cfg, k) = bits;
	} else {
		char **dst = field(ld->cfg, k);

		/* Every name fits: 23 distinct names are < 500 bytes of JSON. */
		snprintf(json + jn, sizeof(json) - jn, "]");
		free(*dst);
		if ((*dst = strdup(json)) == NULL)
			return fail(ld, ld->line, "cannot load: %s", strerror(errno));
	}
	return 0;
}

/* [handler]: any key, in file order; a repeated key keeps its place. */
static int
handler_kv_set(struct loader *ld, const char *name, const char *value)
{
	struct config *cfg = ld->cfg;
	struct cfg_kv *kv;
	char *v;

	if ((v = strdup(value)) == NULL)
		return fail(ld, ld->line, "cannot load: %s", strerror(errno));
	for (size_t i = 0; i < cfg->handler_nkv; i++) {
		if (strcmp(cfg->handler_kv[i].key, name) == 0) {
			free(cfg->handler_kv[i].value);
			cfg->handler_kv[i].value = v;
			return 0;
		}
	}
	if (cfg->handler_nkv == ld->handler_cap) {
		size_t cap = ld->handler_cap ? ld->handler_cap * 2 : 8;

		kv = reallocarray(cfg->handler_kv, cap, sizeof(*kv));
		if (kv == NULL)
			goto fail;
		cfg->handler_kv = kv;
		ld->handler_cap = cap;
	}
	kv = &cfg->handler_kv[cfg->handler_nkv];
	if ((kv->key = strdup(name)) == NULL)
		goto fail;
	kv->value = v;
	cfg->handler_nkv++;
	return 0;
fail:
	free(v);
	return fail(ld, ld->line, "cannot load: %s", strerror(ENOMEM)), -1;
}

/* Whole-file checks and defaults that depend on other keys. */
static int
finish(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	const char *base, *dir;
	long n;
	size_t len;
	char *s;

	if (cfg->handler == NULL)
		return fail(ld, 0, "[workers] handler: missing (accepted: "
		    "path of the handler .so)"), -1;
	if (cfg->token != NULL && cfg->token_file != NULL)
		return fail(ld, cfg->token_line, "[bot] token: set together with "
		    "token_file (accepted: one of token or token_file)"), -1;

	if (cfg->name == NULL) {
		base = strrchr(ld->file, '/');
		base = base ? base + 1 : ld->file;
		len = strlen(base);
		if (len >= 5 && strcmp(base + len - 5, ".conf") == 0)
			len -= 5;
		if ((cfg->name = strndup(base, len)) == NULL)
			return fail(ld, 0, "cannot load: %s", strerror(errno)), -1;
		if (!name_ok(cfg->name))
			return fail(ld, 0, "[bot] name: \"%s\" (from the file name) "
			    "is not accepted (accepted: set name = 1..64 characters "
			    "of A-Z a-z 0-9 . _ - not starting with .)", cfg->name), -1;
	}

	if (cfg->worker_count == 0) {
		n = sysconf(_SC_NPROCESSORS_ONLN);
		cfg->worker_count = n < 1 ? 1 : n > 256 ? 256 : (int)n;
	}
	if (cfg->worker_concurrency == 0) {
		cfg->worker_concurrency = cfg->concurrency / cfg->worker_count;
		if (cfg->worker_concurrency < 1)
			cfg->worker_concurrency = 1;
	}
	if ((n = sysconf(_SC_PAGESIZE)) > 0)
		cfg->stack_size = (cfg->stack_size + (size_t)n - 1) /
		    (size_t)n * (size_t)n;

	if (cfg->journal_path == NULL) {
		dir = getenv("STATE_DIRECTORY");
		/* systemd joins several StateDirectory= paths with ':'. */
		if (dir != NULL && *dir != '\0' && *dir != ':') {
			len = strcspn(dir, ":");
			if (asprintf(&s, "%.*s/journal.db", (int)len, dir) == -1)
				s = NULL;
		} else if (asprintf(&s, "%s.journal.db", cfg->name) == -1) {
			s = NULL;
		}
		if (s == NULL)
			return fail(ld, 0, "cannot load: %s", strerror(ENOMEM)), -1;
		cfg->journal_path = path_absolute(s);
		free(s);
		if (cfg->journal_path == NULL)
			return fail(ld, 0, "[journal] path: %s", strerror(errno)), -1;
	}

	if (cfg->control_socket == NULL &&
	    (cfg->control_socket = default_in_dir("RUNTIME_DIRECTORY", "control.sock",
	    cfg->name, ".control.sock")) == NULL)
		return fail(ld, 0, "[control] socket: %s", strerror(errno)), -1;
	/* sockaddr_un's sun_path holds 108 bytes with the NUL. */
	if (cfg->control_enabled && strlen(cfg->control_socket) > 107) {
		int line = 0;

		for (size_t i = 0; i < NKEYS; i++)
			if (strcmp(keys[i].section, "control") == 0 &&
			    strcmp(keys[i].name, "socket") == 0)
				line = ld->seen[i];
		return fail(ld, line, "[control] socket: %s: path too long for a "
		    "Unix socket (accepted: at most 107 bytes; set [control] socket "
		    "to a shorter path)", cfg->control_socket), -1;
	}
	return 0;
}

/*
 * "$ENV/file" when the systemd directory variable `env` is set (its first
 * ':'-separated entry), else "./<name><suffix>"; made absolute. NULL + errno.
 */
static char *
default_in_dir(const char *env, const char *file, const char *name,
    const char *suffix)
{
	const char *dir = getenv(env);
	char *s, *abs;
	int r;

	if (dir != NULL && *dir != '\0' && *dir != ':')
		r = asprintf(&s, "%.*s/%s", (int)strcspn(dir, ":"), dir, file);
	else
		r = asprintf(&s, "%s%s", name, suffix);
	if (r == -1) {
		errno = ENOMEM;
		return NULL;
	}
	abs = path_absolute(s);
	free(s);
	return abs;
}

/* [metrics] listen: "off", or HOST:PORT where HOST is IPv4, [IPv6] or localhost. */
static int
set_listen(struct loader *ld, const struct key *k, const char *value)
{
	char **dst = field(ld->cfg, k);
	char host[INET6_ADDRSTRLEN + 2], buf[16];
	const char *colon, *h = value;
	size_t hn;
	int64_t port;

	if (strcmp(value, "off") == 0) {
		free(*dst);
		*dst = NULL;
		return 0;
	}
	if (*value == '[') {
		const char *close = strchr(value, ']');

		if (close == NULL || close[1] != ':')
			goto bad;
		h = value + 1;
		hn = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(value, ':');
		if (colon == NULL)
			goto bad;
		hn = (size_t)(colon - value);
	}
	if (hn == 0 || hn >= sizeof(host))
		goto bad;
	memcpy(host, h, hn);
	host[hn] = '\0';
	if (h != value ? inet_pton(AF_INET6, host, buf) != 1 :
	    strcmp(host, "localhost") != 0 && inet_pton(AF_INET, host, buf) != 1)
		goto bad;
	if (colon[1] == '-' || units_parse_int(colon + 1, &port) != 0 || port < k->min ||
	    port > k->max)
		goto bad;
	free(*dst);
	if ((*dst = strdup(value)) == NULL)
		return fail(ld, ld->line, "cannot load: %s", strerror(errno));
	return 0;
bad:
	return fail_key(ld, k, "\"%s\" is not accepted (accepted: %s)", value,
	    k->accepted);
}

/* Write the first error only; returns 0 (an error to inih). */
static int
fail(struct loader *ld, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (ld->failed)
		return 0;
	ld->failed = 1;
	ld->err_line = line;
	if (ld->errlen == 0)
		return 0;
	if (line > 0)
		n = snprintf(ld->err, ld->errlen, "%s:%d: ", ld->file, line);
	else
		n = snprintf(ld->err, ld->errlen, "%s: ", ld->file);
	if (n < 0 || (size_t)n >= ld->errlen)
		return 0;
	va_start(ap, fmt);
	vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return 0;
}

/* fail() at the current line, prefixed with "[section] key: ". */
static int
fail_key(struct loader *ld, const struct key *k, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fail(ld, ld->line, "[%s] %s: %s", k->section, k->name, msg);
	return -1;
}

static void
say_accepted(const struct key *k, char *buf, size_t len)
{
	char lo[32], hi[32];
	size_t n = 0;

	switch (k->type) {
	case KT_INT:
		snprintf(buf, len, "an integer %lld..%lld", (long long)k->min,
		    (long long)k->max);
		break;
	case KT_INT_AUTO:
		snprintf(buf, len, "auto or an integer %lld..%lld",
		    (long long)k->min, (long long)k->max);
		break;
	case KT_SECONDS:
		snprintf(buf, len, "whole seconds %lld..%lld, e.g. 30 or 30s",
		    (long long)(k->min / SECONDS), (long long)(k->max / SECONDS));
		break;
	case KT_DURATION:
		units_say_duration(k->min, lo, sizeof(lo));
		units_say_duration(k->max, hi, sizeof(hi));
		snprintf(buf, len, "a duration %s..%s: a number with ms, s or m; "
		    "bare = seconds", lo, hi);
		break;
	case KT_SIZE:
		units_say_size(k->min, lo, sizeof(lo));
		units_say_size(k->max, hi, sizeof(hi));
		snprintf(buf, len, "a size %s..%s: a number with k or m; "
		    "bare = bytes", lo, hi);
		break;
	case KT_RATE:
		snprintf(buf, len, "a rate N/s or N/m (per second, per minute), "
		    "N an integer %lld..%lld", (long long)k->min, (long long)k->max);
		break;
	case KT_BOOL:
		snprintf(buf, len, "%s", BOOL_LIST);
		break;
	case KT_UPDATES:
	case KT_BYPASS:
		buf[0] = '\0';
		if (k->type == KT_BYPASS)
			n = (size_t)snprintf(buf, len, "none");
		for (int t = 1; t < UPD__COUNT && n < len; t++)
			n += (size_t)snprintf(buf + n, len - n, "%s%s",
			    n ? ", " : "", keys_type_name((enum update_type)t));
		break;
	default:
		snprintf(buf, len, "%s", k->accepted);
		break;
	}
}

/*
 * Next comma-separated item of *p, without surrounding blanks, into buf
 * (cut to fit: no accepted word is that long). Returns 0 past the last item.
 */
static int
list_next(const char **p, char *buf, size_t len)
{
	const char *s = *p, *comma, *end;
	size_t n;

	if (s == NULL)
		return 0;
	comma = strchr(s, ',');
	end = comma ? comma : s + strlen(s);
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	n = (size_t)(end - s);
	if (n >= len)
		n = len - 1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	*p = comma ? comma + 1 : NULL;
	return 1;
}

/* enum update_type of a Telegram update name, -1 if unknown. */
static int
update_type_lookup(const char *name)
{
	enum update_type t = keys_type_from_name(name);

	return t == UPD_UNKNOWN ? -1 : (int)t;
}

/* `path` joined to the current directory if relative; NULL + errno on failure. */
static char *
path_absolute(const char *path)
{
	char *cwd, *s;

	if (path[0] == '/')
		return strdup(path);
	if ((cwd = getcwd(NULL, 0)) == NULL)
		return NULL;
	while (path[0] == '.' && path[1] == '/') {
		path += 2;
		while (*path == '/')
			path++;
	}
	if (asprintf(&s, "%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/",
	    path) == -1) {
		s = NULL;
		errno = ENOMEM;
	}
	free(cwd);
	return s;
}

/* The bot name goes into file and unit names: keep it to a safe alphabet. */
static int
name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64 || s[0] == '.')
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789._-") == n;
}

static void *
field(struct config *cfg, const struct key *k)
{
	return (char *)cfg + k->off;
}

/* Position of `value` in a list "a, b, c", or -1. */
static int
choice_index(const char *list, const char *value)
{
	size_t n = strlen(value);

	for (int i = 0; *list != '\0'; i++) {
		size_t w = strcspn(list, ",");

		if (w == n && strncmp(list, value, n) == 0)
			return i;
		list += w;
		while (*list == ',' || *list == ' ')
			list++;
	}
	return -1;
}

/*
 * A proxy URL. It may carry a password, so no message repeats the value:
 * they say what is wrong with it.
 */
static int
set_proxy(struct loader *ld, const struct key *k, const char *value)
{
	static const char *const schemes[] = {
		"http://", "https://", "socks5://", "socks5h://",
	};
	char **dst = field(ld->cfg, k);
	const char *host = NULL, *at;
	char *s;

	if (strcmp(value, "off") == 0 || strcmp(value, "none") == 0) {
		free(*dst);
		*dst = NULL;
		return 0;
	}
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strncmp(value, schemes[i], strlen(schemes[i])) == 0)
			host = value + strlen(schemes[i]);
	if (host == NULL)
		return fail_key(ld, k, "the scheme is not accepted (accepted: %s, or off)",
		    k->accepted);
	for (const char *p = value; *p != '\0'; p++)
		if (*p <= ' ' || *p == 0x7f || *p == '"' || *p == '\\')
			return fail_key(ld, k, "contains a blank, quote or control "
			    "character (accepted: %s)", k->accepted);
	if ((at = strrchr(host, '@')) != NULL)
		host = at + 1;
	if (*host == '\0' || *host == ':' || *host == '/')
		return fail_key(ld, k, "no host (accepted: %s)", k->accepted);
	if ((s = strdup(value)) == NULL)
		return fail_key(ld, k, "%s", strerror(errno));
	if (*dst != NULL) {
		explicit_bzero(*dst, strlen(*dst));
		free(*dst);
	}
	*dst = s;
	return 0;
}
