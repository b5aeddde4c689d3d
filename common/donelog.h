/* The done log: ids of finished updates appended next to the journal, read back by the next master. */
#ifndef TGRUN_DONELOG_H
#define TGRUN_DONELOG_H

#include <stddef.h>
#include <stdint.h>

/*
 * `<journal>.done` holds the ids of updates that finished and whose
 * completion may not be in the journal yet: the master appends them once per
 * loop turn (completions reach SQLite only every 100 ms) and empties the file
 * after each flush; its workers, which keep the same open file, append what
 * they finish after the master died. The next master marks the ids done in
 * the journal before it replays anything, so they do not run again.
 *
 * No fsync: a killed process's writes survive in the page cache, and a power
 * loss only means those updates run again (the journal's own rules hold).
 *
 * The file is also the lock that keeps a new master from replaying while the
 * workers of the old one still run: the master takes flock(LOCK_EX) on its
 * open file description, which its workers inherit, so the lock is free only
 * once all of them have exited.
 *
 * A record is 16 bytes, little-endian: the id, then the id XOR a constant.
 * Records are written whole, so a write cut short (by a kill or a full disk)
 * leaves at worst a torn last record; the reader skips whatever does not
 * check out and never takes garbage for an id.
 */

/* A worker's copy of its master's done log, after exec (after THROTTLE_FD). */
#define DONELOG_FD 5
#define DONELOG_REC 16

/*
 * How long a worker whose master died may live, in ms: `finish_ms` for its
 * running updates, then `grace_ms` for those it cancelled, then a second
 * more; SIGALRM ends it then, whatever it runs.
 */
static inline int64_t donelog_orphan_limit_ms(int64_t finish_ms, int64_t grace_ms)
{
	return finish_ms + grace_ms + 1000;
}

/* Open or create `path` (mode 0600) to append and read, close-on-exec: an fd, or -1 (errno). */
int donelog_open(const char *path) __attribute__((warn_unused_result));
/* flock(LOCK_EX) without waiting: 0 taken, 1 held by another open of the file, -1 (errno). */
int donelog_trylock(int fd) __attribute__((warn_unused_result));
/* Append `n` ids, whole records, in as few write()s as fit 4 KiB each: 0, or -1 (errno). */
int donelog_append(int fd, const int64_t *ids, size_t n) __attribute__((warn_unused_result));
/*
 * Every id in the file, in file order (duplicates kept), in *ids (malloc'd,
 * NULL when none) and *n; *skipped: bytes that were not a valid record.
 * 0, or -1 (errno).
 */
int donelog_read(int fd, int64_t **ids, size_t *n, size_t *skipped)
	__attribute__((warn_unused_result));
/* Empty the file: 0, or -1 (errno). */
int donelog_truncate(int fd) __attribute__((warn_unused_result));

#endif
