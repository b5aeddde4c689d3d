/* The master's update journal: SQLite (WAL) file holding every fetched update until it is done. */
#ifndef TGRUN_JOURNAL_H
#define TGRUN_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "store.h"

/*
 * One connection, used only by the master's single thread; no function yields
 * or blocks on anything but the disk. The file is opened in exclusive locking
 * mode: a second tgrund (or a sqlite3 shell) cannot use the journal while the
 * master holds it.
 *
 * Every write returns -1 on failure after rolling back cleanly, so the journal
 * stays usable; journal_errcode() / journal_disk_full() then say why.
 * A callback must not call back into the journal: any function on `j` but
 * the counters and error getters aborts via fatalx() from inside one.
 */
struct journal;
struct sqlite3;

/* The on-disk schema version (PRAGMA user_version) this code writes. */
#define JOURNAL_SCHEMA_VERSION 1
/*
 * Open or create the journal at `path` (created with mode 0600; -wal gets
 * the same mode), switch it to WAL, create or check the schema, run
 * PRAGMA quick_check and prove the file writable with a write transaction.
 * `sync` is the durability of the commits that confirm updates to Telegram
 * (journal_add_batch, journal_set_offset); every other commit uses at most
 * NORMAL. Returns NULL with one line naming the path and the cause in `err`
 * (not found or not writable directory, read-only file, not a database,
 * corrupt, newer schema, locked by another process).
 */
struct journal *journal_open(const char *path, enum cfg_sync sync,
    char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * Flush queued completions (a failure is logged, those updates are replayed
 * next time), checkpoint the WAL and close. NULL is allowed.
 */
void journal_close(struct journal *j);

/*
 * Store a fetched batch and the offset that will confirm it, in one
 * transaction, fsynced when sync = full: the next getUpdates confirms the
 * batch to Telegram, so this commit must come first. An update already in
 * the journal is kept as is (attempt included). `n` may be 0 (offset only).
 * Returns the number of updates that were new, or -1 (nothing stored).
 */
int journal_add_batch(struct journal *j, const struct store_rec *recs,
    size_t n, int64_t next_offset)
	__attribute__((warn_unused_result));

/* The stored offset in *out (0 if none was ever stored). 0 or -1. */
int journal_offset(struct journal *j, int64_t *out)
	__attribute__((warn_unused_result));
int journal_set_offset(struct journal *j, int64_t offset)
	__attribute__((warn_unused_result));

/*
 * Mark an update done. The id is queued in memory and deleted by the next
 * journal_flush(); losing the queue only means the update is replayed. Call
 * once per id. Returns -1 (ENOMEM) only if the queue cannot grow.
 */
int journal_done(struct journal *j, int64_t update_id)
	__attribute__((warn_unused_result));
/* Number of ids queued by journal_done() and not yet flushed. */
size_t journal_done_pending(const struct journal *j);
/*
 * Delete every queued id in one transaction (synchronous = NORMAL at most).
 * On failure the queue is kept whole for the next try. 0 or -1.
 */
int journal_flush(struct journal *j)
	__attribute__((warn_unused_result));

/* Persist an update's attempt counter; an id not in the journal is ignored. */
int journal_set_attempt(struct journal *j, int64_t update_id, int attempt)
	__attribute__((warn_unused_result));

/*
 * Call `cb` for every unfinished update in update_id order. Queued
 * completions are flushed first; if that fails they are still skipped.
 * Returns 0, the callback's non-zero value if it stopped the walk, or -1.
 */
int journal_replay(struct journal *j, store_update_cb cb, void *arg)
	__attribute__((warn_unused_result));

/* Unfinished updates: stored minus queued as done. O(1). */
int64_t journal_count(const struct journal *j);

/*
 * Move an update from the journal to the dead letters with its attempt
 * count and last error (NULL allowed), in one transaction. -1 with errno
 * ENOENT (journal_errcode() SQLITE_NOTFOUND) if the id is not journaled.
 */
int journal_dead_letter(struct journal *j, int64_t update_id, int attempts,
    const char *error)
	__attribute__((warn_unused_result));
/* Every dead letter in update_id order; returns like journal_replay(). */
int journal_dead_list(struct journal *j, store_dead_cb cb, void *arg)
	__attribute__((warn_unused_result));
/* One dead letter: 1 (cb called, its return ignored), 0 if absent, or -1. */
int journal_dead_get(struct journal *j, int64_t update_id, store_dead_cb cb,
    void *arg)
	__attribute__((warn_unused_result));
/*
 * Move dead letters back into the journal with attempt 0; STORE_ALL means
 * all. Returns how many moved, or -1. The caller picks them up with
 * journal_replay(), skipping the ids it already holds.
 */
int64_t journal_dead_retry(struct journal *j, int64_t update_id)
	__attribute__((warn_unused_result));
/* Delete dead letters; STORE_ALL means all. Returns how many, or -1. */
int64_t journal_dead_drop(struct journal *j, int64_t update_id)
	__attribute__((warn_unused_result));
/* Number of dead letters, or -1. */
int64_t journal_dead_count(struct journal *j);

/*
 * The outcome of the last call that touched the database: the extended
 * SQLite result code (0 after a success), the OS errno behind it, its text.
 */
int journal_errcode(const struct journal *j);
int journal_syserrno(const struct journal *j);
const char *journal_errmsg(const struct journal *j);
/*
 * True if the last call failed for lack of space (SQLITE_FULL, or an I/O
 * error with ENOSPC or EDQUOT): pause polling and retry later; the journal is
 * intact and later writes succeed once space is back.
 */
bool journal_disk_full(const struct journal *j);

/* Bytes on disk: the file plus its WAL, for metrics; -1 if stat() fails. */
int64_t journal_size_bytes(const struct journal *j);

/* The journal as the master's store (store.h); the same object, not a copy. */
struct store *journal_store(struct journal *j);

/* The connection itself, for tests only (e.g. PRAGMA max_page_count). */
struct sqlite3 *journal_db(struct journal *j);

#endif
