/* tgrunctl: asks a running tgrund over its control socket and prints the answer. */
#include "config.h"
#include "control.h"
#include "escape.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

/* Exit statuses. */
enum { CTL_OK = 0, CTL_ERROR = 1, CTL_USAGE = 2, CTL_UNREACHABLE = 3 };

#define REPLY_TIMEOUT_MS 15000
#define REPLY_MAX (16u << 20)

static void usage(FILE *f)
{
	fprintf(f,
	    "usage: tgrunctl (-c FILE | -s SOCKET) [--json] COMMAND [ARGS]\n"
	    "commands:\n"
	    "  status                      counters, polling state, journal\n"
	    "  workers                     one line per worker process\n"
	    "  reload                      start a new worker generation (like SIGHUP)\n"
	    "  pause | resume              stop or restart polling getUpdates\n"
	    "  dead-letters list           updates given up after max_attempts\n"
	    "  dead-letters show ID        one of them, with its update\n"
	    "  dead-letters retry ID|all   run them again now\n"
	    "  dead-letters drop ID|all    delete them\n"
	    "  fibers N                    what the fibers of worker N wait on\n"
	    "exit status: 0 ok, 1 error reply, 2 usage or config error, 3 daemon "
	    "not reachable\n");
}

/* The request for argv, or NULL after a usage message. */
static json_t *build_request(int argc, char **argv)
{
	const char *cmd = argv[0];
	char *end;
	json_t *req;

	if (strcmp(cmd, "status") == 0 || strcmp(cmd, "workers") == 0 ||
	    strcmp(cmd, "reload") == 0 || strcmp(cmd, "pause") == 0 ||
	    strcmp(cmd, "resume") == 0) {
		if (argc != 1)
			goto usage;
		return json_pack("{s:i, s:s}", "v", CONTROL_VERSION, "cmd", cmd);
	}
	if (strcmp(cmd, "fibers") == 0) {
		long n;

		if (argc != 2)
			goto usage;
		errno = 0;
		n = strtol(argv[1], &end, 10);
		if (errno || *end || end == argv[1] || n < 0 || n > 100000)
			goto usage;
		return json_pack("{s:i, s:s, s:i}", "v", CONTROL_VERSION, "cmd", cmd,
		    "worker", (int)n);
	}
	if (strcmp(cmd, "dead-letters") == 0) {
		const char *action = argc > 1 ? argv[1] : "list";
		long long id;

		if (strcmp(action, "list") == 0 && argc <= 2)
			return json_pack("{s:i, s:s, s:s}", "v", CONTROL_VERSION, "cmd", cmd,
			    "action", action);
		if (argc != 3 || (strcmp(action, "show") != 0 && strcmp(action, "retry") != 0 &&
		    strcmp(action, "drop") != 0))
			goto usage;
		req = json_pack("{s:i, s:s, s:s}", "v", CONTROL_VERSION, "cmd", cmd,
		    "action", action);
		if (strcmp(argv[2], "all") == 0 && action[0] != 's') {
			json_object_set_new(req, "id", json_string("all"));
			return req;
		}
		errno = 0;
		id = strtoll(argv[2], &end, 10);
		if (errno || *end || end == argv[2] || id < 0) {
			json_decref(req);
			goto usage;
		}
		json_object_set_new(req, "id", json_integer(id));
		return req;
	}
	fprintf(stderr, "tgrunctl: unknown command \"%s\"\n", cmd);
usage:
	usage(stderr);
	return NULL;
}

/* Send `line` to `path` and read one reply line into *reply. Exit status. */
static int exchange(const char *path, const char *line, char **reply)
{
	struct sockaddr_un sa;
	size_t len = 0, cap = 4096;
	char *buf;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "tgrunctl: socket path too long: %s\n", path);
		return CTL_USAGE;
	}
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fprintf(stderr, "tgrunctl: cannot connect to %s: %s (is tgrund running "
		    "with this config?)\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return CTL_UNREACHABLE;
	}
	for (size_t off = 0, n = strlen(line); off < n;) {
		ssize_t k = write(fd, line + off, n - off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			fprintf(stderr, "tgrunctl: writing to %s: %s\n", path, strerror(errno));
			close(fd);
			return CTL_UNREACHABLE;
		}
		off += (size_t)k;
	}
	if ((buf = malloc(cap)) == NULL) {
		close(fd);
		return CTL_ERROR;
	}
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t k;
		char *nl;
		int r = poll(&p, 1, REPLY_TIMEOUT_MS);

		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			fprintf(stderr, "tgrunctl: no reply from %s within %d s\n", path,
			    REPLY_TIMEOUT_MS / 1000);
			break;
		}
		if (len + 1 >= cap) {
			char *nb = cap < REPLY_MAX ? realloc(buf, cap * 2) : NULL;

			if (nb == NULL) {
				fprintf(stderr, "tgrunctl: reply too long\n");
				break;
			}
			buf = nb;
			cap *= 2;
		}
		k = read(fd, buf + len, cap - len - 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			fprintf(stderr, "tgrunctl: %s closed the connection without a "
			    "reply\n", path);
			break;
		}
		len += (size_t)k;
		buf[len] = '\0';
		if ((nl = memchr(buf, '\n', len)) != NULL) {
			*nl = '\0';
			close(fd);
			*reply = buf;
			return CTL_OK;
		}
	}
	free(buf);
	close(fd);
	return CTL_UNREACHABLE;
}

/* ---- human-readable output --------------------------------------------------- */

/*
 * `len` bytes of `s` fit for a terminal: an update's keys and a handler's
 * error are outside text, and an escape sequence in them must not reach the
 * screen. Valid until the 8th call after this one.
 */
static const char *safe(const char *s, size_t len)
{
	static char *ring[8];
	static unsigned next;
	char **slot = &ring[next++ % 8];

	free(*slot);
	/* An escape is at most 4 bytes per byte escaped. */
	if ((*slot = malloc(4 * len + 1)) == NULL)
		return "?";
	escape_text(*slot, 4 * len + 1, s, len);
	return *slot;
}

static const char *str(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_string(v) ? safe(json_string_value(v), json_string_length(v)) : "-";
}

static long long num(const json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

static void print_stream(const char *name, const json_t *s)
{
	if (json_is_object(s))
		printf("cluster stream %s: %lld messages, %lld bytes, seq %lld..%lld\n", name,
		    num(s, "messages"), num(s, "bytes"), num(s, "first_seq"),
		    num(s, "last_seq"));
	else
		printf("cluster stream %s: unknown\n", name);
}

/* Cluster mode: lines starting "cluster ". */
static void print_cluster(const json_t *c)
{
	const json_t *nodes = json_object_get(c, "nodes"), *n;
	size_t i;

	if (!json_is_object(c))
		return;
	printf("cluster node:     %s\n", str(c, "node"));
	printf("cluster role:     %s\n", str(c, "role"));
	printf("cluster leader:   %s (epoch %lld)\n", str(c, "leader"), num(c, "epoch"));
	printf("cluster nodes:    %zu\n", json_array_size(nodes));
	json_array_foreach(nodes, i, n)
		printf("cluster node %s: %s, capacity %lld, in flight %lld, seen %lld ms ago\n",
		    str(n, "node"), str(n, "role"), num(n, "capacity"), num(n, "in_flight"),
		    num(n, "age_ms"));
	print_stream("journal", json_object_get(json_object_get(c, "streams"), "journal"));
	print_stream("work", json_object_get(json_object_get(c, "streams"), "work"));
	printf("cluster pulled:   %lld, ran %lld\n", num(c, "pulled"), num(c, "ran"));
}

static void print_status(const json_t *r)
{
	const json_t *j = json_object_get(r, "journal");
	const json_t *since = json_object_get(r, "since_last_poll_s");

	printf("bot:              %s (pid %lld)\n", str(r, "bot"), num(r, "pid"));
	printf("state:            %s\n", str(r, "state"));
	printf("generation:       %lld\n", num(r, "generation"));
	printf("workers:          %lld of %lld ready\n", num(r, "workers"),
	    num(r, "worker_count"));
	printf("in flight:        %lld\n", num(r, "in_flight"));
	printf("pending:          %lld\n", num(r, "pending"));
	printf("fetched:          %lld\n", num(r, "fetched"));
	printf("done:             %lld\n", num(r, "done"));
	printf("failed:           %lld\n", num(r, "failed"));
	printf("retried:          %lld\n", num(r, "retried"));
	printf("dead letters:     %lld\n", num(r, "dead_letters"));
	printf("timed out:        %lld\n", num(r, "timed_out"));
	printf("updates/s:        %.1f\n", json_number_value(json_object_get(r,
	    "updates_per_sec")));
	if (json_is_number(since))
		printf("last getUpdates:  %.1f s ago\n", json_number_value(since));
	else
		printf("last getUpdates:  never\n");
	if (json_is_true(json_object_get(j, "enabled")))
		printf("journal:          on, %s, %lld bytes\n", str(j, "path"),
		    num(j, "bytes"));
	else
		printf("journal:          off\n");
	print_cluster(json_object_get(r, "cluster"));
}

static void print_workers(const json_t *r)
{
	const json_t *a = json_object_get(r, "workers"), *w;
	size_t i;

	printf("%-4s %-8s %-4s %-9s %9s %10s %8s %10s %12s\n", "SLOT", "PID", "GEN",
	    "STATE", "INFLIGHT", "DONE", "FAILED", "RSS", "HEARTBEAT");
	json_array_foreach(a, i, w) {
		char rss[32], hb[32];

		if (json_is_integer(json_object_get(w, "rss_bytes")))
			snprintf(rss, sizeof(rss), "%.1fM", num(w, "rss_bytes") / 1048576.0);
		else
			snprintf(rss, sizeof(rss), "-");
		if (json_is_integer(json_object_get(w, "heartbeat_ms")))
			snprintf(hb, sizeof(hb), "%lldms ago", num(w, "heartbeat_ms"));
		else
			snprintf(hb, sizeof(hb), "-");
		printf("%-4lld %-8lld %-4lld %-9s %9lld %10lld %8lld %10s %12s\n",
		    num(w, "slot"), num(w, "pid"), num(w, "generation"), str(w, "state"),
		    num(w, "in_flight"), num(w, "done"), num(w, "failed"), rss, hb);
	}
}

static void when(long long t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (localtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S",
	    &tm) == 0)
		snprintf(buf, len, "%lld", t);
}

static void print_dead(const json_t *r)
{
	const json_t *a = json_object_get(r, "dead_letters"), *d;
	size_t i;
	char t[32];

	if (json_array_size(a) == 0) {
		printf("no dead letters\n");
		return;
	}
	printf("%-12s %-16s %-8s %-19s %s\n", "UPDATE", "TYPE", "ATTEMPTS", "DIED",
	    "ERROR");
	json_array_foreach(a, i, d) {
		when(num(d, "died_at"), t, sizeof(t));
		printf("%-12lld %-16s %-8lld %-19s %s\n", num(d, "update_id"),
		    str(d, "type"), num(d, "attempts"), t, str(d, "error"));
	}
}

static void print_dead_one(const json_t *r)
{
	const json_t *d = json_object_get(r, "dead_letter");
	char t[32], *body;

	when(num(d, "died_at"), t, sizeof(t));
	printf("update:    %lld (%s)\nattempts:  %lld\ndied at:   %s\nerror:     %s\n",
	    num(d, "update_id"), str(d, "type"), num(d, "attempts"), t, str(d, "error"));
	body = json_dumps(json_object_get(d, "update"), JSON_INDENT(2) |
	    JSON_ENCODE_ANY | JSON_SORT_KEYS);
	/* Line by line: the indentation's newlines are the only ones left raw. */
	for (const char *ln = body ? body : "", *nl; ln != NULL; ln = nl ? nl + 1 : NULL) {
		nl = strchr(ln, '\n');
		printf("%s\n", safe(ln, nl ? (size_t)(nl - ln) : strlen(ln)));
	}
	free(body);
}

static void print_fibers(const json_t *r)
{
	const json_t *a = json_object_get(r, "fibers"), *f;
	size_t i;

	printf("worker %lld (pid %lld): %zu fibers\n", num(r, "worker"), num(r, "pid"),
	    json_array_size(a));
	if (json_array_size(a) == 0)
		return;
	printf("%-12s %-16s %-24s %s\n", "UPDATE", "TYPE", "WAITING ON", "FOR");
	json_array_foreach(a, i, f) {
		char id[24];

		if (json_is_integer(json_object_get(f, "update_id")))
			snprintf(id, sizeof(id), "%lld", num(f, "update_id"));
		else
			snprintf(id, sizeof(id), "-");
		printf("%-12s %-16s %-24s %lld ms\n", id, str(f, "type"), str(f, "what"),
		    num(f, "waited_ms"));
	}
}

static void print_human(const char *cmd, const char *action, const json_t *r)
{
	if (strcmp(cmd, "status") == 0)
		print_status(r);
	else if (strcmp(cmd, "workers") == 0)
		print_workers(r);
	else if (strcmp(cmd, "reload") == 0)
		printf("reload %s\n", str(r, "reload"));
	else if (strcmp(cmd, "pause") == 0 || strcmp(cmd, "resume") == 0)
		printf("%s\n", str(r, "state"));
	else if (strcmp(cmd, "fibers") == 0)
		print_fibers(r);
	else if (strcmp(action, "list") == 0)
		print_dead(r);
	else if (strcmp(action, "show") == 0)
		print_dead_one(r);
	else if (strcmp(action, "retry") == 0)
		printf("%lld dead letters retried\n", num(r, "retried"));
	else
		printf("%lld dead letters dropped\n", num(r, "dropped"));
}

/* The socket named by the config; systemd's runtime directory if that is where it is. */
static char *socket_from_config(const char *file)
{
	char err[1024], *path, *alt = NULL;
	struct config *cfg = config_load(file, err, sizeof(err));
	struct stat st;

	if (cfg == NULL) {
		fprintf(stderr, "tgrunctl: %s\n", err);
		return NULL;
	}
	if (!cfg->control_enabled)
		fprintf(stderr, "tgrunctl: %s: [control] enabled = no; trying %s anyway\n",
		    file, cfg->control_socket);
	path = strdup(cfg->control_socket);
	/* Run outside the unit, $RUNTIME_DIRECTORY is unset: try the unit's. */
	if (path != NULL && stat(path, &st) != 0 && getenv("RUNTIME_DIRECTORY") == NULL &&
	    asprintf(&alt, "/run/tgrun/%s/control.sock", cfg->name) > 0 &&
	    stat(alt, &st) == 0 && S_ISSOCK(st.st_mode)) {
		free(path);
		path = alt;
		alt = NULL;
	}
	free(alt);
	config_free(cfg);
	return path;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *conf = NULL, *sock = NULL, *action = "list";
	char *path, *line, *reply = NULL;
	int c, json = 0, st;
	json_t *req, *r;

	while ((c = getopt_long(argc, argv, "+c:s:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': conf = optarg; break;
		case 's': sock = optarg; break;
		case 'j': json = 1; break;
		case 'h': usage(stdout); return CTL_OK;
		default: usage(stderr); return CTL_USAGE;
		}
	}
	if (optind >= argc || (conf == NULL) == (sock == NULL)) {
		if (optind < argc)
			fprintf(stderr, "tgrunctl: give one of -c FILE or -s SOCKET\n");
		usage(stderr);
		return CTL_USAGE;
	}
	if ((req = build_request(argc - optind, argv + optind)) == NULL)
		return CTL_USAGE;
	if (json_is_string(json_object_get(req, "action")))
		action = json_string_value(json_object_get(req, "action"));
	path = sock ? strdup(sock) : socket_from_config(conf);
	line = json_dumps(req, JSON_COMPACT);
	if (path == NULL || line == NULL) {
		json_decref(req);
		free(line);
		return CTL_USAGE;
	}
	{
		char *nl = realloc(line, strlen(line) + 2);

		if (nl == NULL) {
			free(line);
			free(path);
			json_decref(req);
			return CTL_ERROR;
		}
		line = nl;
		strcat(line, "\n");
	}
	st = exchange(path, line, &reply);
	free(line);
	free(path);
	if (st != CTL_OK) {
		json_decref(req);
		return st;
	}
	r = json_loads(reply, 0, NULL);
	if (!json_is_object(r)) {
		fprintf(stderr, "tgrunctl: the daemon sent a reply that is not JSON: %s\n",
		    safe(reply, strnlen(reply, 200)));
		st = CTL_ERROR;
	} else if (json) {
		printf("%s\n", reply);
		st = json_is_true(json_object_get(r, "ok")) ? CTL_OK : CTL_ERROR;
	} else if (!json_is_true(json_object_get(r, "ok"))) {
		fprintf(stderr, "tgrunctl: %s\n", str(r, "error"));
		st = CTL_ERROR;
	} else {
		print_human(json_string_value(json_object_get(req, "cmd")), action, r);
	}
	json_decref(r);
	json_decref(req);
	free(reply);
	return st;
}
