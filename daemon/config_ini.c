/* Reading the config's INI text with inih: physical lines, sections, keys and continuation lines. */
#include "config_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "log.h"

static char *read_line(char *str, int num, void *stream);
static void classify_line(struct loader *ld, const char *s);
static int on_value(void *user, const char *section, const char *name,
    const char *value);
static int on_continuation(struct loader *ld, const char *section,
    const char *name, const char *value);
static int handler_set(struct loader *ld, const char *name, const char *value);

void
config_ini_read(struct loader *ld)
{
	int r;

	/* The reader counts physical lines: this inih's handler gets no line. */
	r = ini_parse_stream(read_line, ld, on_value, ld);
	if (r > 0 && (!ld->failed || r < ld->err_line)) {
		/* inih found a line it cannot parse before any error of ours. */
		ld->failed = 0;
		config_fail(ld, r, "syntax error (accepted: [section], key = value, "
		    "; comment, # comment)");
	} else if (r == -2 && !ld->failed) {
		config_fail(ld, 0, "cannot load: %s", strerror(ENOMEM));
	}
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
			config_fail(ld, ld->line, "NUL byte in line (accepted: a text file)");
			return NULL;
		}
		c = getc(ld->fp);
		if (c != '\n' && c != EOF) {
			config_fail(ld, ld->line, "line too long (accepted: lines of at "
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
	if (config_section_known(s + 1, n)) {
		ld->prev_name[0] = '\0';
		ld->prev_line = 0;
		return;
	}
	config_fail(ld, ld->line, "unknown section [%.*s] (accepted: "
	    CONFIG_SECTION_LIST ")", (int)n, s + 1);
}

static int
on_value(void *user, const char *section, const char *name, const char *value)
{
	struct loader *ld = user;
	const struct key *k;
	size_t i;

	if (ld->failed)
		return 0;
	if (*section == '\0')
		return config_fail(ld, ld->line, "%s: key outside any section (accepted: "
		    "keys after a [section] line: " CONFIG_SECTION_LIST ")", name);
	if (!config_section_known(section, strlen(section)))
		/* an indented header that classify_line() let by */
		return config_fail(ld, ld->line, "unknown section [%s] (accepted: "
		    CONFIG_SECTION_LIST ")", section);
	if (*name == '\0')
		return config_fail(ld, ld->line, "[%s]: empty key name (accepted: "
		    "key = value)", section);
	/* inih hands an indented line after a key to us as more of its value. */
	if (ld->indented && ld->prev_line != 0 && ld->prev_line != ld->line &&
	    strcmp(name, ld->prev_name) == 0)
		return on_continuation(ld, section, name, value);

	snprintf(ld->prev_name, sizeof(ld->prev_name), "%s", name);
	ld->prev_line = ld->line;
	if (strcmp(section, "handler") == 0)
		return handler_set(ld, name, value) == 0;

	if ((k = config_key_find(section, name)) == NULL) {
		char list[512];
		size_t n = 0;

		list[0] = '\0';
		for (i = 0; i < config_nkeys; i++)
			if (strcmp(config_keys[i].section, section) == 0 && n < sizeof(list))
				n += (size_t)snprintf(list + n, sizeof(list) - n,
				    "%s%s", n ? ", " : "", config_keys[i].name);
		return config_fail(ld, ld->line, "[%s] %s: unknown key (accepted: %s)",
		    section, name, list);
	}
	i = (size_t)(k - config_keys);
	if (ld->seen[i] != 0) {
		config_fail_key(ld, k, "duplicate key, first set on line %d "
		    "(accepted: each key once)", ld->seen[i]);
		return 0;
	}
	ld->seen[i] = ld->line;
	return config_value_set(ld, k, value) == 0;
}

/* An indented line continuing the previous key: lists and [handler] only. */
static int
on_continuation(struct loader *ld, const char *section, const char *name,
    const char *value)
{
	const struct key *k;
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
			return config_fail(ld, ld->line, "cannot load: %s", strerror(ENOMEM));
		free(kv->value);
		kv->value = s;
		return 1;
	}
	if ((k = config_key_find(section, name)) == NULL)
		fatalx("continued [%s] %s is not a key", section, name);
	if (k->type != KT_UPDATES && k->type != KT_SEQ && k->type != KT_BYPASS) {
		config_fail_key(ld, k, "indented line continues the value (accepted: "
		    "one-line values; only lists and [handler] values continue "
		    "on indented lines)");
		return 0;
	}
	/* config_value_set() kept the list so far; a trailing comma may end it. */
	n = strlen(ld->list_text);
	while (n > 0 && (ld->list_text[n - 1] == ' ' || ld->list_text[n - 1] == '\t'))
		n--;
	if (asprintf(&s, "%.*s%s%s", (int)n, ld->list_text,
	    n == 0 || ld->list_text[n - 1] == ',' ? "" : ",", value) == -1)
		return config_fail(ld, ld->line, "cannot load: %s", strerror(ENOMEM));
	free(ld->list_text);
	ld->list_text = s;
	return config_value_list(ld, k, s) == 0;
}

/* [handler]: any key, in file order; a repeated key keeps its place. */
static int
handler_set(struct loader *ld, const char *name, const char *value)
{
	struct config *cfg = ld->cfg;
	struct cfg_kv *kv;
	char *v;

	if ((v = strdup(value)) == NULL)
		return config_fail(ld, ld->line, "cannot load: %s", strerror(errno));
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
	return config_fail(ld, ld->line, "cannot load: %s", strerror(ENOMEM)), -1;
}
