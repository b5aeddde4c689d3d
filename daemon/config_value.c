/* Setting one config value: parsing, validation, and the messages that say what is accepted. */
#include "config_int.h"
#include "units.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"
#include "log.h"

static int set_string(struct loader *ld, const struct key *k, const char *value);
static int set_number(struct loader *ld, const struct key *k, const char *value);
static int set_file_path(struct loader *ld, const struct key *k,
    const char *value);
static int set_listen(struct loader *ld, const struct key *k, const char *value);
static int set_proxy(struct loader *ld, const struct key *k, const char *value);
static int set_nats(struct loader *ld, const struct key *k, const char *value);
static void say_accepted(const struct key *k, char *buf, size_t len);
static int list_next(const char **p, char *buf, size_t len);
static void *field(struct config *cfg, const struct key *k);
static int choice_index(const char *list, const char *value);

int
config_value_set(struct loader *ld, const struct key *k, const char *value)
{
	char acc[160];

	if (*value == '\0' && k->type != KT_UPDATES) {
		say_accepted(k, acc, sizeof(acc));
		return config_fail_key(ld, k, "empty value (accepted: %s)", acc);
	}
	switch (k->type) {
	case KT_NAME:
	case KT_NODE:
	case KT_TOKEN:
	case KT_URL:
	case KT_PATH:
		return set_string(ld, k, value);
	case KT_FILE:
	case KT_DIR:
		return set_file_path(ld, k, value);
	case KT_PROXY:
		return set_proxy(ld, k, value);
	case KT_NATS:
		return set_nats(ld, k, value);
	case KT_LISTEN:
		return set_listen(ld, k, value);
	case KT_UPDATES:
	case KT_SEQ:
	case KT_BYPASS:
		free(ld->list_text);
		if ((ld->list_text = strdup(value)) == NULL)
			return config_fail(ld, ld->line, "cannot load: %s", strerror(errno));
		return config_value_list(ld, k, value);
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
		if (!config_name_ok(value))
			return config_fail_key(ld, k, "\"%s\" is not accepted (accepted: %s)",
			    value, k->accepted);
		s = strdup(value);
		break;
	case KT_NODE:
		if (!config_node_ok(value))
			return config_fail_key(ld, k, "\"%s\" is not accepted (accepted: %s)",
			    value, k->accepted);
		s = strdup(value);
		break;
	case KT_TOKEN:
		/* The value must never reach a message: say only what is wrong. */
		for (const char *p = value; *p != '\0'; p++)
			if (*p <= ' ' || *p == '/' || *p == 0x7f)
				return config_fail_key(ld, k, "contains a blank, control or '/' "
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
			return config_fail_key(ld, k, "\"%s\" is not accepted (accepted: %s)",
			    value, k->accepted);
		s = strndup(value, n);
		break;
	default:		/* KT_PATH */
		s = config_path_value(ld, value);
		break;
	}
	if (s == NULL)
		return config_fail_key(ld, k, "%s", strerror(errno));
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

	if ((abs = config_path_value(ld, value)) == NULL)
		return config_fail_key(ld, k, "%s: %s", value, strerror(errno));
	if (stat(abs, &st) == -1) {
		config_fail_key(ld, k, "%s: %s", value, strerror(errno));
		goto fail;
	}
	if (k->type == KT_FILE ? !S_ISREG(st.st_mode) : !S_ISDIR(st.st_mode)) {
		config_fail_key(ld, k, "%s: not a %s (accepted: %s)", value,
		    k->type == KT_FILE ? "regular file" : "directory", k->accepted);
		goto fail;
	}
	if ((fd = open(abs, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1) {
		config_fail_key(ld, k, "%s: %s", value, strerror(errno));
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
			return config_fail_key(ld, k, "\"%s\" is not accepted (accepted: %s)",
			    value, acc);
		*(int *)dst = b;
		return 0;
	case KT_SYNC:;
		_Static_assert(CFG_SYNC_OFF == 0 && CFG_SYNC_NORMAL == 1 &&
		    CFG_SYNC_FULL == 2, "the order of [journal] sync's accepted values");
		if ((b = choice_index(k->accepted, value)) == -1)
			return config_fail_key(ld, k, "\"%s\" is not accepted (accepted: %s)",
			    value, acc);
		*(enum cfg_sync *)dst = (enum cfg_sync)b;
		return 0;
	case KT_CHOICE:
		if ((b = choice_index(k->accepted, value)) == -1)
			return config_fail_key(ld, k, "\"%s\" is not accepted (accepted: %s)",
			    value, acc);
		*(int *)dst = b;
		return 0;
	case KT_LEVEL:
		if ((b = log_level_parse(value)) == -1)
			return config_fail_key(ld, k, "\"%s\" is not accepted (accepted: %s)",
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
		if (r == 0 && k->type == KT_SECONDS && v % UNITS_SECOND_MS != 0)
			return config_fail_key(ld, k, "\"%s\" is not a whole number of "
			    "seconds (accepted: %s)", value, acc);
		break;
	}
	if (r == -1)
		return config_fail_key(ld, k, "\"%s\" is not %s (accepted: %s)", value,
		    what, acc);
	if (r == -2 || v < k->min || v > k->max)
		return config_fail_key(ld, k, "\"%s\" is out of range (accepted: %s)",
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
int
config_value_list(struct loader *ld, const struct key *k, const char *value)
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
			return config_fail_key(ld, k, "empty list item in \"%s\" (accepted: "
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
				return config_fail_key(ld, k, "\"%s\" is not accepted "
				    "(accepted: %s)", item, acc);
			bits |= 1u << t;
			continue;
		}
		if ((t = (int)keys_type_from_name(item)) == UPD_UNKNOWN)
			return config_fail_key(ld, k, "\"%s\" is not an update type "
			    "(accepted: %s)", item, acc);
		if (k->type == KT_UPDATES && !(bits & (1u << t)))
			jn += (size_t)snprintf(json + jn, sizeof(json) - jn, "%s\"%s\"",
			    bits ? "," : "", item);
		bits |= 1u << t;
	}
	if (none && n > 1)
		return config_fail_key(ld, k, "\"none\" must stand alone (accepted: %s)", acc);

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
			return config_fail(ld, ld->line, "cannot load: %s", strerror(errno));
	}
	return 0;
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
		return config_fail(ld, ld->line, "cannot load: %s", strerror(errno));
	return 0;
bad:
	return config_fail_key(ld, k, "\"%s\" is not accepted (accepted: %s)", value,
	    k->accepted);
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
		    (long long)(k->min / UNITS_SECOND_MS), (long long)(k->max / UNITS_SECOND_MS));
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
		snprintf(buf, len, "%s", UNITS_BOOL_ACCEPTED);
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
		return config_fail_key(ld, k, "the scheme is not accepted (accepted: %s, or off)",
		    k->accepted);
	for (const char *p = value; *p != '\0'; p++)
		if (*p <= ' ' || *p == 0x7f || *p == '"' || *p == '\\')
			return config_fail_key(ld, k, "contains a blank, quote or control "
			    "character (accepted: %s)", k->accepted);
	if ((at = strrchr(host, '@')) != NULL)
		host = at + 1;
	if (*host == '\0' || *host == ':' || *host == '/')
		return config_fail_key(ld, k, "no host (accepted: %s)", k->accepted);
	if ((s = strdup(value)) == NULL)
		return config_fail_key(ld, k, "%s", strerror(errno));
	if (*dst != NULL) {
		explicit_bzero(*dst, strlen(*dst));
		free(*dst);
	}
	*dst = s;
	return 0;
}

/*
 * [cluster] nats: URLs that may carry a user and password, so no message
 * repeats the value; kept joined by ',' without blanks (libnats' form).
 */
static int
set_nats(struct loader *ld, const struct key *k, const char *value)
{
	static const char *const schemes[] = { "nats://", "tls://", "ws://", "wss://" };
	char **dst = field(ld->cfg, k);
	const char *p = value;
	size_t n = 0, len = strlen(value);
	char *s;
	int item = 0;

	if ((s = malloc(len + 1)) == NULL)
		return config_fail_key(ld, k, "%s", strerror(errno));
	while (p != NULL) {
		const char *comma = strchr(p, ',');
		const char *b = p, *e = comma ? comma : p + strlen(p), *host = NULL, *at;

		item++;
		p = comma ? comma + 1 : NULL;
		while (b < e && (*b == ' ' || *b == '\t'))
			b++;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
			if ((size_t)(e - b) > strlen(schemes[i]) &&
			    strncmp(b, schemes[i], strlen(schemes[i])) == 0)
				host = b + strlen(schemes[i]);
		if (host == NULL) {
			config_fail_key(ld, k, "URL %d: the scheme is not accepted "
			    "(accepted: %s)", item, k->accepted);
			goto fail;
		}
		for (const char *q = b; q < e; q++)
			if (*q <= ' ' || *q == 0x7f || *q == '"' || *q == '\\') {
				config_fail_key(ld, k, "URL %d: contains a blank, quote or "
				    "control character (accepted: %s)", item, k->accepted);
				goto fail;
			}
		if ((at = memrchr(host, '@', (size_t)(e - host))) != NULL)
			host = at + 1;
		if (host == e || *host == ':' || *host == '/') {
			config_fail_key(ld, k, "URL %d: no host (accepted: %s)", item,
			    k->accepted);
			goto fail;
		}
		if (n > 0)
			s[n++] = ',';
		memcpy(s + n, b, (size_t)(e - b));
		n += (size_t)(e - b);
	}
	s[n] = '\0';
	if (*dst != NULL) {
		explicit_bzero(*dst, strlen(*dst));
		free(*dst);
	}
	*dst = s;
	return 0;
fail:
	explicit_bzero(s, len + 1);
	free(s);
	return -1;
}
