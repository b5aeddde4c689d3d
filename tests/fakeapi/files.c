/* In-memory file store: uploads, seeded files, file_id and file_path lookups. */
#include "files.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* file_id and file_path both carry the entry index, so lookups are O(1). */
#define ID_PREFIX "BQACAgIAAxkBAAI"

struct files {
	struct files_entry **e;
	size_t n, cap;
};

struct files *
files_new(void)
{
	return util_xcalloc(1, sizeof(struct files));
}

void
files_free(struct files *fs)
{
	if (fs == NULL)
		return;
	for (size_t i = 0; i < fs->n; i++) {
		free(fs->e[i]->data);
		free(fs->e[i]);
	}
	free(fs->e);
	free(fs);
}

static const char *
extension(const char *name)
{
	const char *dot = name ? strrchr(name, '.') : NULL;

	if (dot == NULL || strlen(dot) > 8 || strchr(dot, '/') != NULL)
		return "";
	for (const char *c = dot + 1; *c; c++) {
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9')))
			return "";
	}
	return dot;
}

struct files_entry *
files_add(struct files *fs, const char *dir, const char *name, const char *data,
    size_t size)
{
	struct files_entry *e = util_xcalloc(1, sizeof(*e));
	size_t i = fs->n;
	uint64_t h = util_hash_u64(i + 0x5eed);

	if (fs->n == fs->cap) {
		fs->cap = fs->cap ? fs->cap * 2 : 64;
		fs->e = util_xrealloc(fs->e, fs->cap * sizeof(*fs->e));
	}
	snprintf(e->file_id, sizeof(e->file_id), ID_PREFIX "%08zx_%016llx", i,
	    (unsigned long long)h);
	snprintf(e->unique_id, sizeof(e->unique_id), "AgAD%08zx", i);
	snprintf(e->path, sizeof(e->path), "%s/file_%zu%s", dir, i, extension(name));
	e->data = util_xmalloc(size ? size : 1);
	memcpy(e->data, data, size);
	e->size = size;
	fs->e[fs->n++] = e;
	return e;
}

struct files_entry *
files_find_id(struct files *fs, const char *file_id)
{
	size_t plen = strlen(ID_PREFIX);
	unsigned long long i;
	char *end;

	if (strncmp(file_id, ID_PREFIX, plen) != 0)
		return NULL;
	i = strtoull(file_id + plen, &end, 16);
	if (end != file_id + plen + 8 || i >= fs->n ||
	    strcmp(fs->e[i]->file_id, file_id) != 0)
		return NULL;
	return fs->e[i];
}

struct files_entry *
files_find_path(struct files *fs, const char *path)
{
	const char *p = strstr(path, "/file_");
	unsigned long long i;
	char *end;

	if (p == NULL)
		return NULL;
	i = strtoull(p + 6, &end, 10);
	if (end == p + 6 || i >= fs->n || strcmp(fs->e[i]->path, path) != 0)
		return NULL;
	return fs->e[i];
}
