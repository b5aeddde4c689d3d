/* In-memory file store: uploads, seeded files, file_id and file_path lookups. */
#ifndef FAKEAPI_FILES_H
#define FAKEAPI_FILES_H

#include <stddef.h>

struct files_entry {
	char file_id[48];
	char unique_id[24];
	char path[96];
	char *data;
	size_t size;
};

struct files;

struct files *files_new(void);
void files_free(struct files *fs);
/* Store a copy of data under dir ("documents", "photos", ...) with the extension of
 * name (may be NULL). */
struct files_entry *files_add(struct files *fs, const char *dir, const char *name,
    const char *data, size_t size);
struct files_entry *files_find_id(struct files *fs, const char *file_id);
struct files_entry *files_find_path(struct files *fs, const char *path);

#endif
