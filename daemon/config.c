/* The bot's config: the table of keys, config_load() and the whole-file checks and defaults. */
#include "config.h"
#include "config_int.h"
#include "units.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"
#include "log.h"

#define DAY_MS		(24 * 60 * UNITS_MINUTE_MS)

#define F(field) offsetof(struct config, field)

const struct key config_keys[] = {
	{ "bot", "name", KT_NAME, F(name), 0, 0,
	    "1..64 characters of A-Z a-z 0-9 . _ - not starting with ." },
	{ "bot", "token_file", KT_PATH, F(token_file), 0, 0,
	    "path of a file holding the token" },
	{ "bot", "token", KT_TOKEN, F(token), 0, 0,
	    "the bot token from @BotFather" },
	{ "bot", "api_url", KT_URL, F(api_url), 0, 0,
	    "a URL starting with http:// or https://" },

	{ "poll", "timeout", KT_SECONDS, F(poll_timeout_ms), 0, 50 * UNITS_SECOND_MS, NULL },
	{ "poll", "limit", KT_INT, F(poll_limit), 1, 100, NULL },
	{ "poll", "allowed_updates", KT_UPDATES, F(allowed_updates), 0, 0, NULL },
	{ "poll", "delete_webhook", KT_BOOL, F(delete_webhook), 0, 0, NULL },

	{ "workers", "count", KT_INT_AUTO, F(worker_count), 1, 256, NULL },
	{ "workers", "handler", KT_FILE, F(handler), 0, 0,
	    "path of the handler .so" },
	{ "workers", "stack_size", KT_SIZE, F(stack_size), 16 * UNITS_KIB, 64 * UNITS_MIB, NULL },
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

	{ "cluster", "nats", KT_NATS, F(cluster_nats), 0, 0,
	    "one or more URLs nats://, tls:// or ws(s)://[USER:PASSWORD@]HOST[:PORT], "
	    "comma separated" },
	{ "cluster", "credentials", KT_FILE, F(cluster_credentials), 0, 0,
	    "path of a NATS credentials file" },
	{ "cluster", "node", KT_NODE, F(cluster_node), 0, 0,
	    "1..64 characters of A-Z a-z 0-9 _ -" },
	{ "cluster", "replicas", KT_INT, F(cluster_replicas), 1, 5, NULL },
	{ "cluster", "lease", KT_DURATION, F(cluster_lease_ms), UNITS_SECOND_MS,
	    60 * UNITS_SECOND_MS, NULL },
};
const size_t config_nkeys = sizeof(config_keys) / sizeof(config_keys[0]);

static const char *const sections[] = {
	"bot", "poll", "workers", "order", "limits", "journal", "control", "metrics",
	"api", "throttle", "log", "cluster", "handler",
};

_Static_assert(sizeof(config_keys) / sizeof(config_keys[0]) <= CONFIG_MAX_KEYS,
    "struct loader's seen[] holds a line per key");
_Static_assert(UPD__COUNT <= 32, "bypass is a 32-bit set of update types");

static int finish(struct loader *ld);
static int finish_cluster(struct loader *ld);
static void warn_plain_http(const struct loader *ld);
static char *default_in_dir(const char *env, const char *file, const char *name,
    const char *suffix);

struct config *
config_load(const char *path, char *err, size_t errlen)
{
	struct loader ld;
	struct config *cfg;
	struct stat st;

	memset(&ld, 0, sizeof(ld));
	ld.file = path;
	ld.err = err;
	ld.errlen = errlen;
	if (errlen > 0)
		err[0] = '\0';

	if ((cfg = calloc(1, sizeof(*cfg))) == NULL) {
		config_fail(&ld, 0, "cannot load: %s", strerror(errno));
		return NULL;
	}
	ld.cfg = cfg;
	cfg->poll_timeout_ms = 30 * UNITS_SECOND_MS;
	cfg->poll_limit = 100;
	cfg->stack_size = 256 * UNITS_KIB;
	cfg->sequentialize = CFG_SEQ_CHAT;
	cfg->concurrency = 500;
	cfg->max_pending = 10000;
	cfg->update_timeout_ms = 60 * UNITS_SECOND_MS;
	cfg->shutdown_timeout_ms = 30 * UNITS_SECOND_MS;
	cfg->max_attempts = 3;
	cfg->kill_grace_ms = 5 * UNITS_SECOND_MS;
	cfg->heartbeat_timeout_ms = 10 * UNITS_SECOND_MS;
	cfg->journal_enabled = 1;
	cfg->journal_sync = CFG_SYNC_FULL;
	cfg->control_enabled = 1;
	cfg->api_timeout_ms = 30 * UNITS_SECOND_MS;
	cfg->api_retries = 3;
	cfg->api_retry_after_max_ms = 30 * UNITS_SECOND_MS;
	/* Telegram's documented flood limits. */
	cfg->throttle_global = (struct cfg_rate){ 30, UNITS_SECOND_MS };
	cfg->throttle_chat = (struct cfg_rate){ 1, UNITS_SECOND_MS };
	cfg->throttle_group = (struct cfg_rate){ 20, UNITS_MINUTE_MS };
	cfg->log_level = LOG_LVL_INFO;
	cfg->cluster_replicas = 3;
	cfg->cluster_lease_ms = 5 * UNITS_SECOND_MS;
	if ((cfg->api_url = strdup("https://api.telegram.org")) == NULL ||
	    (cfg->path = config_path_absolute(path)) == NULL) {
		config_fail(&ld, 0, "cannot load: %s", strerror(errno));
		goto fail;
	}

	if ((ld.fp = fopen(path, "re")) == NULL) {
		config_fail(&ld, 0, "cannot open: %s", strerror(errno));
		goto fail;
	}
	if (fstat(fileno(ld.fp), &st) == -1) {
		config_fail(&ld, 0, "cannot open: %s", strerror(errno));
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		config_fail(&ld, 0, "cannot open: %s", strerror(EISDIR));
		goto fail;
	}

	config_ini_read(&ld);
	if (!ld.failed && ferror(ld.fp))
		config_fail(&ld, 0, "cannot read: %s", strerror(errno));
	fclose(ld.fp);
	ld.fp = NULL;
	if (ld.failed || finish(&ld) == -1)
		goto fail;

	free(ld.list_text);
	if (cfg->token != NULL)
		log_warn("%s:%d: [bot] token: a token in the config file is "
		    "discouraged; use LoadCredential= or token_file",
		    path, cfg->token_line);
	warn_plain_http(&ld);
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
	if (cfg->cluster_nats != NULL) {
		explicit_bzero(cfg->cluster_nats, strlen(cfg->cluster_nats));
		free(cfg->cluster_nats);
	}
	free(cfg->cluster_credentials);
	free(cfg->cluster_node);
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

const struct key *
config_key_find(const char *section, const char *name)
{
	for (size_t i = 0; i < config_nkeys; i++)
		if (strcmp(config_keys[i].section, section) == 0 &&
		    strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

int
config_section_known(const char *name, size_t n)
{
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		if (strlen(sections[i]) == n && strncmp(name, sections[i], n) == 0)
			return 1;
	return 0;
}

char *
config_path_absolute(const char *path)
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

/*
 * A path from the file: a relative one is taken from the config file's
 * directory, so that one file names the same files for tgrund and tgrunctl
 * whatever their current directory. NULL + errno.
 */
char *
config_path_value(const struct loader *ld, const char *path)
{
	const char *dir = ld->cfg->path, *slash = strrchr(dir, '/');
	char *s;

	if (path[0] == '/')
		return strdup(path);
	while (path[0] == '.' && path[1] == '/') {
		path += 2;
		while (*path == '/')
			path++;
	}
	/* ld->cfg->path is absolute: slash is at least its first byte. */
	if (asprintf(&s, "%.*s/%s", (int)(slash - dir), dir, path) == -1) {
		errno = ENOMEM;
		return NULL;
	}
	return s;
}

/* The bot name goes into file and unit names: keep it to a safe alphabet. */
int
config_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64 || s[0] == '.')
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789._-") == n;
}

/* A cluster node name goes into NATS keys: no dots, no blanks. */
int
config_node_ok(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= 64 && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* [cluster]: a key without nats is an error; the node and credentials defaults. */
static int
finish_cluster(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	const char *dir;
	char host[256], *s;
	int line = 0;

	for (size_t i = 0; i < config_nkeys; i++)
		if (strcmp(config_keys[i].section, "cluster") == 0 && ld->seen[i] > 0)
			line = ld->seen[i];
	if (cfg->cluster_nats == NULL) {
		if (line > 0)
			return config_fail(ld, line, "[cluster] nats: missing (accepted: "
			    "%s; without it, remove the [cluster] keys)",
			    config_key_find("cluster", "nats")->accepted), -1;
		return 0;
	}
	if (cfg->cluster_node == NULL) {
		if (gethostname(host, sizeof(host)) != 0)
			host[0] = '\0';
		host[sizeof(host) - 1] = '\0';
		host[strcspn(host, ".")] = '\0';
		if (!config_node_ok(host))
			return config_fail(ld, 0, "[cluster] node: the host name \"%s\" is "
			    "not accepted (accepted: set node = 1..64 characters of "
			    "A-Z a-z 0-9 _ -)", host), -1;
		if ((cfg->cluster_node = strdup(host)) == NULL)
			return config_fail(ld, 0, "cannot load: %s", strerror(errno)), -1;
	}
	dir = getenv("CREDENTIALS_DIRECTORY");
	if (cfg->cluster_credentials == NULL && dir != NULL && *dir != '\0') {
		if (asprintf(&s, "%s/nats.creds", dir) == -1)
			return config_fail(ld, 0, "cannot load: %s", strerror(ENOMEM)), -1;
		if (access(s, R_OK) == 0)
			cfg->cluster_credentials = s;
		else
			free(s);
	}
	return 0;
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
		return config_fail(ld, 0, "[workers] handler: missing (accepted: "
		    "path of the handler .so)"), -1;
	if (cfg->token != NULL && cfg->token_file != NULL)
		return config_fail(ld, cfg->token_line, "[bot] token: set together with "
		    "token_file (accepted: one of token or token_file)"), -1;

	if (cfg->name == NULL) {
		base = strrchr(ld->file, '/');
		base = base ? base + 1 : ld->file;
		len = strlen(base);
		if (len >= 5 && strcmp(base + len - 5, ".conf") == 0)
			len -= 5;
		if ((cfg->name = strndup(base, len)) == NULL)
			return config_fail(ld, 0, "cannot load: %s", strerror(errno)), -1;
		if (!config_name_ok(cfg->name))
			return config_fail(ld, 0, "[bot] name: \"%s\" (from the file name) "
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
			return config_fail(ld, 0, "cannot load: %s", strerror(ENOMEM)), -1;
		cfg->journal_path = config_path_absolute(s);
		free(s);
		if (cfg->journal_path == NULL)
			return config_fail(ld, 0, "[journal] path: %s", strerror(errno)), -1;
	}

	if (cfg->control_socket == NULL &&
	    (cfg->control_socket = default_in_dir("RUNTIME_DIRECTORY", "control.sock",
	    cfg->name, ".control.sock")) == NULL)
		return config_fail(ld, 0, "[control] socket: %s", strerror(errno)), -1;
	/* sockaddr_un's sun_path holds 108 bytes with the NUL. */
	if (cfg->control_enabled && strlen(cfg->control_socket) > 107) {
		int line = ld->seen[config_key_find("control", "socket") - config_keys];

		return config_fail(ld, line, "[control] socket: %s: path too long for a "
		    "Unix socket (accepted: at most 107 bytes; set [control] socket "
		    "to a shorter path)", cfg->control_socket), -1;
	}
	return finish_cluster(ld);
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
	abs = config_path_absolute(s);
	free(s);
	return abs;
}

int
config_fail(struct loader *ld, int line, const char *fmt, ...)
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

int
config_fail_key(struct loader *ld, const struct key *k, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	config_fail(ld, ld->line, "[%s] %s: %s", k->section, k->name, msg);
	return -1;
}

/*
 * An http:// api_url sends the token, which is part of every request's
 * path, as clear text: fine to a local Bot API server, worth a warning to
 * anywhere else. The host is named, never the URL (it may hold a password).
 */
static void
warn_plain_http(const struct loader *ld)
{
	const char *host = ld->cfg->api_url + 7, *at, *end;
	char name[256];
	struct in6_addr a6;
	struct in_addr a4;
	size_t n;

	if (strncmp(ld->cfg->api_url, "http://", 7) != 0)
		return;
	n = strcspn(host, "/?#");		/* the authority */
	if ((at = memrchr(host, '@', n)) != NULL) {	/* user:password@ */
		n -= (size_t)(at + 1 - host);
		host = at + 1;
	}
	if (*host == '[')
		n = (end = memchr(host, ']', n)) != NULL ? (size_t)(end + 1 - host) : n;
	else if ((end = memchr(host, ':', n)) != NULL)
		n = (size_t)(end - host);
	snprintf(name, sizeof(name), "%.*s", (int)n, host);
	if (strcasecmp(name, "localhost") == 0 ||
	    (inet_pton(AF_INET, name, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127))
		return;
	if (n >= 2 && name[0] == '[' && name[n - 1] == ']' && n < sizeof(name)) {
		name[n - 1] = '\0';
		if (inet_pton(AF_INET6, name + 1, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6))
			return;
		name[n - 1] = ']';
	}
	log_warn("%s:%d: [bot] api_url: http:// to %s, which is not a loopback "
	    "address: the bot token crosses the network unencrypted; use https://",
	    ld->file, ld->seen[config_key_find("bot", "api_url") - config_keys], name);
}
