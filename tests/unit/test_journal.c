/* Unit tests of daemon/journal.c: durability, completions, replay, dead letters, bad files, disk full. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "journal.h"
#include "log.h"

/* The unprivileged user the permission cases run as when the tests run as root. */
#define NOBODY 65534

static char tmpdir[256];
static char errbuf[512];

/* A path inside the private directory (one static buffer per slot). */
static const char *tpath(int slot, const char *name)
{
	static char buf[4][512];

	snprintf(buf[slot], sizeof(buf[slot]), "%s/%s", tmpdir, name);
	return buf[slot];
}

static struct journal *jopen(const char *path, enum cfg_sync sync)
{
	struct journal *j;

	errbuf[0] = '\0';
	j = journal_open(path, sync, errbuf, sizeof(errbuf));
	if (j == NULL)
		fail_msg("journal_open(%s): %s", path, errbuf);
	return j;
}

static void add(struct journal *j, const int64_t *ids, size_t n, int64_t off,
    int expect_new)
{
	struct store_rec recs[64];
	char bodies[64][64];
	size_t i;

	assert_true(n <= 64);
	for (i = 0; i < n; i++) {
		snprintf(bodies[i], sizeof(bodies[i]), "{\"update_id\":%lld}",
		    (long long)ids[i]);
		recs[i].update_id = ids[i];
		recs[i].body = bodies[i];
		recs[i].len = strlen(bodies[i]);
	}
	assert_int_equal(journal_add_batch(j, recs, n, off), expect_new);
}

static int64_t offset_of(struct journal *j)
{
	int64_t off = -42;

	assert_int_equal(journal_offset(j, &off), 0);
	return off;
}

/* What a replay saw. */
struct seen {
	int n;
	int64_t id[256];
	int attempt[256];
	char body[256][64];
	int stop_at;		/* return 7 at this call (1-based), 0 = never */
};

static int collect(void *arg, int64_t id, const char *body, size_t len, int attempt)
{
	struct seen *s = arg;

	assert_true(s->n < 256);
	assert_int_equal(strlen(body), len);
	s->id[s->n] = id;
	s->attempt[s->n] = attempt;
	snprintf(s->body[s->n], sizeof(s->body[s->n]), "%.*s", (int)len, body);
	s->n++;
	return s->n == s->stop_at ? 7 : 0;
}

static void replay(struct journal *j, struct seen *s)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(journal_replay(j, collect, s), 0);
}

static void assert_ids(const struct seen *s, const int64_t *ids, int n)
{
	int i;

	assert_int_equal(s->n, n);
	for (i = 0; i < n; i++)
		assert_int_equal(s->id[i], ids[i]);
}

static int64_t pragma_int(struct journal *j, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v;

	assert_int_equal(sqlite3_prepare_v2(journal_db(j), sql, -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void exec_sql(struct journal *j, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(journal_db(j), sql, NULL, NULL, &msg) != SQLITE_OK) {
		fail_msg("%s: %s", sql, msg);
		sqlite3_free(msg);
	}
}

/* Open with the expectation that it fails with `want` in the error line. */
static void assert_open_fails(const char *path, const char *want)
{
	struct journal *j;

	errbuf[0] = '\0';
	j = journal_open(path, CFG_SYNC_FULL, errbuf, sizeof(errbuf));
	if (j != NULL) {
		journal_close(j);
		fail_msg("journal_open(%s) succeeded, expected \"%s\"", path, want);
	}
	if (strstr(errbuf, want) == NULL || strstr(errbuf, path) == NULL ||
	    strchr(errbuf, '\n') != NULL)
		fail_msg("journal_open(%s): error \"%s\" lacks \"%s\" or the path",
		    path, errbuf, want);
}

static void make_journal(const char *path, int nupdates)
{
	struct journal *j = jopen(path, CFG_SYNC_NORMAL);
	int64_t ids[50];
	int i, k;

	for (k = 0; k < nupdates; k += 50) {
		for (i = 0; i < 50; i++)
			ids[i] = k + i + 1;
		add(j, ids, 50, k + 51, 50);
	}
	journal_close(j);
}

/* ---- basic life cycle ---- */

static void test_open_creates_schema(void **state)
{
	const char *p = tpath(0, "create.db");
	struct journal *j = jopen(p, CFG_SYNC_FULL);
	struct stat sb;

	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(pragma_int(j, "PRAGMA user_version"), JOURNAL_SCHEMA_VERSION);
	assert_int_equal(pragma_int(j, "SELECT count(*) FROM sqlite_schema WHERE "
	    "type = 'table' AND name IN ('updates', 'dead', 'meta')"), 3);
	assert_int_equal(pragma_int(j, "SELECT count(*) FROM pragma_journal_mode "
	    "WHERE journal_mode = 'wal'"), 1);
	assert_int_equal(journal_count(j), 0);
	assert_int_equal(journal_dead_count(j), 0);
	assert_int_equal(offset_of(j), 0);
	assert_int_equal(journal_errcode(j), 0);
	assert_false(journal_disk_full(j));
	add(j, (int64_t[]){ 1 }, 1, 2, 1);
	/* The WAL gets the database's mode. */
	assert_int_equal(stat(tpath(1, "create.db-wal"), &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_true(journal_size_bytes(j) > 0);
	journal_close(j);
	journal_close(NULL);
}

static void test_reopen_keeps_data(void **state)
{
	const char *p = tpath(0, "reopen.db");
	struct journal *j = jopen(p, CFG_SYNC_FULL);
	struct seen s;

	add(j, (int64_t[]){ 100, 101, 102 }, 3, 103, 3);
	assert_int_equal(journal_dead_letter(j, 101, 3, "boom"), 0);
	journal_close(j);

	j = jopen(p, CFG_SYNC_FULL);
	assert_int_equal(journal_count(j), 2);
	assert_int_equal(journal_dead_count(j), 1);
	assert_int_equal(offset_of(j), 103);
	replay(j, &s);
	assert_ids(&s, (int64_t[]){ 100, 102 }, 2);
	assert_string_equal(s.body[1], "{\"update_id\":102}");
	journal_close(j);
}

/* The offset and the batch are one transaction: both or neither. */
static void test_batch_and_offset_together(void **state)
{
	const char *p = tpath(0, "atomic.db");
	struct journal *j = jopen(p, CFG_SYNC_FULL);
	struct store_rec recs[3] = {
		{ 10, "{\"a\":1}", 7 }, { 11, NULL, 0 }, { 12, "{\"c\":3}", 7 },
	};
	struct seen s;

	add(j, (int64_t[]){ 1, 2 }, 2, 3, 2);
	/* The NULL body breaks NOT NULL in the middle of the batch. */
	assert_int_equal(journal_add_batch(j, recs, 3, 13), -1);
	assert_int_equal(journal_errcode(j), SQLITE_CONSTRAINT_NOTNULL);
	assert_false(journal_disk_full(j));
	assert_int_equal(offset_of(j), 3);
	assert_int_equal(journal_count(j), 2);
	recs[1].body = "{\"b\":2}";
	recs[1].len = 7;
	assert_int_equal(journal_add_batch(j, recs, 3, 13), 3);
	assert_int_equal(journal_errcode(j), 0);
	/* Only the offset: an empty getUpdates answer. */
	assert_int_equal(journal_add_batch(j, NULL, 0, 14), 0);
	journal_close(j);

	j = jopen(p, CFG_SYNC_FULL);
	assert_int_equal(offset_of(j), 14);
	replay(j, &s);
	assert_ids(&s, (int64_t[]){ 1, 2, 10, 11, 12 }, 5);
	assert_string_equal(s.body[3], "{\"b\":2}");
	assert_int_equal(journal_set_offset(j, 99), 0);
	journal_close(j);
	j = jopen(p, CFG_SYNC_FULL);
	assert_int_equal(offset_of(j), 99);
	journal_close(j);
}

static void test_duplicates_ignored(void **state)
{
	struct journal *j = jopen(tpath(0, "dup.db"), CFG_SYNC_FULL);
	struct store_rec again = { 2, "{\"changed\":true}", 16 };
	struct seen s;

	add(j, (int64_t[]){ 1, 2, 3 }, 3, 4, 3);
	assert_int_equal(journal_set_attempt(j, 2, 2), 0);
	/* A re-delivered update keeps its stored body and attempt. */
	assert_int_equal(journal_add_batch(j, &again, 1, 4), 0);
	add(j, (int64_t[]){ 3, 4, 4 }, 3, 5, 1);
	assert_int_equal(journal_count(j), 4);
	replay(j, &s);
	assert_ids(&s, (int64_t[]){ 1, 2, 3, 4 }, 4);
	assert_string_equal(s.body[1], "{\"update_id\":2}");
	assert_int_equal(s.attempt[1], 2);
	journal_close(j);
}

/* ---- completions ---- */

static void test_done_and_flush(void **state)
{
	const char *p = tpath(0, "done.db");
	struct journal *j = jopen(p, CFG_SYNC_FULL);
	struct seen s;

	add(j, (int64_t[]){ 1, 2, 3, 4, 5, 6 }, 6, 7, 6);
	assert_int_equal(journal_flush(j), 0);	/* nothing queued */
	assert_int_equal(journal_done(j, 2), 0);
	assert_int_equal(journal_done(j, 4), 0);
	assert_int_equal(journal_done_pending(j), 2);
	assert_int_equal(journal_count(j), 4);
	assert_int_equal(journal_flush(j), 0);
	assert_int_equal(journal_done_pending(j), 0);
	assert_int_equal(journal_count(j), 4);
	assert_int_equal(pragma_int(j, "SELECT count(*) FROM updates"), 4);

	/* Queued but unflushed: not replayed (replay flushes them). */
	assert_int_equal(journal_done(j, 5), 0);
	replay(j, &s);
	assert_ids(&s, (int64_t[]){ 1, 3, 6 }, 3);
	assert_int_equal(journal_done_pending(j), 0);

	/* Queued at close: close flushes them. */
	assert_int_equal(journal_done(j, 1), 0);
	assert_int_equal(journal_done(j, 6), 0);
	journal_close(j);
	j = jopen(p, CFG_SYNC_FULL);
	assert_int_equal(journal_count(j), 1);
	replay(j, &s);
	assert_ids(&s, (int64_t[]){ 3 }, 1);
	journal_close(j);
}

/* A flush that fails keeps every queued id; replay still skips them. */
static void test_flush_failure_keeps_queue(void **state)
{
	struct journal *j = jopen(tpath(0, "flushfail.db"), CFG_SYNC_FULL);
	struct seen s;
	int i;

	add(j, (int64_t[]){ 1, 2, 3, 4 }, 4, 5, 4);
	for (i = 0; i < 600; i++)	/* past the first growth of the queue */
		assert_int_equal(journal_done(j, i % 2 ? 3 : 1), 0);
	/* Fail at the start of the transaction. */
	exec_sql(j, "PRAGMA query_only = ON");
	assert_int_equal(journal_flush(j), -1);
	assert_int_equal(journal_errcode(j) & 0xff, SQLITE_READONLY);
	assert_false(journal_disk_full(j));
	assert_string_not_equal(journal_errmsg(j), "");
	assert_int_equal(journal_done_pending(j), 600);
	replay(j, &s);
	assert_ids(&s, (int64_t[]){ 2, 4 }, 2);
	assert_int_equal(journal_done_pending(j), 600);
	exec_sql(j, "PRAGMA query_only = OFF");

	/* Fail in the middle: id 1 is deleted in the transaction, then 3 fails. */
	exec_sql(j, "CREATE TEMP TRIGGER no3 BEFORE DELETE ON updates "
	    "WHEN old.update_id = 3 BEGIN SELECT RAISE(ABORT, 'injected'); END");
	assert_int_equal(journal_flush(j), -1);
	assert_int_equal(journal_errcode(j), SQLITE_CONSTRAINT_TRIGGER);
	assert_int_equal(journal_done_pending(j), 600);
	assert_int_equal(pragma_int(j, "SELECT count(*) FROM updates"), 4);
	/* The same trigger makes the dead-letter move fail after its insert. */
	assert_int_equal(journal_dead_letter(j, 3, 1, "x"), -1);
	assert_int_equal(journal_dead_count(j), 0);
	exec_sql(j, "DROP TRIGGER no3");

	assert_int_equal(journal_flush(j), 0);
	assert_int_equal(journal_done_pending(j), 0);
	assert_int_equal(journal_errcode(j), 0);
	assert_int_equal(journal_count(j), 2);
	assert_int_equal(pragma_int(j, "SELECT count(*) FROM updates"), 2);
	journal_close(j);
}

/* ---- replay and attempts ---- */

static void test_replay_order_and_attempts(void **state)
{
	struct journal *j = jopen(tpath(0, "order.db"), CFG_SYNC_OFF);
	struct seen s;

	add(j, (int64_t[]){ 50, 10 }, 2, 51, 2);
	add(j, (int64_t[]){ 30, 20, 40 }, 3, 51, 3);
	assert_int_equal(journal_set_attempt(j, 30, 2), 0);
	assert_int_equal(journal_set_attempt(j, 50, 1), 0);
	assert_int_equal(journal_set_attempt(j, 777, 1), 0);	/* ignored */
	replay(j, &s);
	assert_ids(&s, (int64_t[]){ 10, 20, 30, 40, 50 }, 5);
	assert_int_equal(s.attempt[0], 0);
	assert_int_equal(s.attempt[2], 2);
	assert_int_equal(s.attempt[4], 1);
	assert_string_equal(s.body[3], "{\"update_id\":40}");

	/* A callback's non-zero return stops the walk and is returned. */
	memset(&s, 0, sizeof(s));
	s.stop_at = 2;
	assert_int_equal(journal_replay(j, collect, &s), 7);
	assert_int_equal(s.n, 2);
	/* The statement was reset: a full replay works again. */
	replay(j, &s);
	assert_int_equal(s.n, 5);
	journal_close(j);
}

static void test_set_attempt_persists(void **state)
{
	const char *p = tpath(0, "attempt.db");
	struct journal *j = jopen(p, CFG_SYNC_FULL);
	struct seen s;

	add(j, (int64_t[]){ 7, 8 }, 2, 9, 2);
	assert_int_equal(journal_set_attempt(j, 8, 3), 0);
	journal_close(j);
	j = jopen(p, CFG_SYNC_FULL);
	replay(j, &s);
	assert_ids(&s, (int64_t[]){ 7, 8 }, 2);
	assert_int_equal(s.attempt[0], 0);
	assert_int_equal(s.attempt[1], 3);
	journal_close(j);
}

static int reenter(void *arg, int64_t id, const char *body, size_t len, int attempt)
{
	return journal_flush(arg);
}

/* Calling back into the journal from a replay callback is a bug: abort. */
static void test_callback_reentry_aborts(void **state)
{
	const char *p = tpath(0, "reenter.db");
	struct journal *j = jopen(p, CFG_SYNC_OFF);
	pid_t pid;
	int st;

	add(j, (int64_t[]){ 1 }, 1, 2, 1);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd >= 0)
			dup2(fd, 2);
		_exit(journal_replay(j, reenter, j) == 0 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGABRT);
	journal_close(j);
}

/* ---- dead letters ---- */

struct dead_seen {
	int n;
	int64_t id[16];
	int attempts[16];
	char error[16][32];
	char body[16][64];
	int64_t died_at[16];
};

static int dead_collect(void *arg, const struct store_dead *d)
{
	struct dead_seen *s = arg;

	assert_true(s->n < 16);
	assert_int_equal(strlen(d->body), d->len);
	s->id[s->n] = d->update_id;
	s->attempts[s->n] = d->attempts;
	snprintf(s->error[s->n], sizeof(s->error[s->n]), "%s", d->error);
	snprintf(s->body[s->n], sizeof(s->body[s->n]), "%s", d->body);
	s->died_at[s->n] = d->died_at;
	s->n++;
	return 0;
}

static void test_dead_letters(void **state)
{
	const char *p = tpath(0, "dead.db");
	struct journal *j = jopen(p, CFG_SYNC_FULL);
	struct dead_seen d;
	struct seen s;
	int64_t t0 = (int64_t)time(NULL);

	add(j, (int64_t[]){ 1, 2, 3, 4, 5 }, 5, 6, 5);
	assert_int_equal(journal_dead_letter(j, 2, 3, "handler crashed"), 0);
	assert_int_equal(journal_dead_letter(j, 4, 1, NULL), 0);
	errno = 0;
	assert_int_equal(journal_dead_letter(j, 99, 1, "x"), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(journal_errcode(j), SQLITE_NOTFOUND);
	assert_int_equal(journal_count(j), 3);
	assert_int_equal(journal_dead_count(j), 2);

	memset(&d, 0, sizeof(d));
	assert_int_equal(journal_dead_list(j, dead_collect, &d), 0);
	assert_int_equal(d.n, 2);
	assert_int_equal(d.id[0], 2);
	assert_int_equal(d.attempts[0], 3);
	assert_string_equal(d.error[0], "handler crashed");
	assert_string_equal(d.body[0], "{\"update_id\":2}");
	assert_true(d.died_at[0] >= t0 && d.died_at[0] <= t0 + 5);
	assert_int_equal(d.id[1], 4);
	assert_string_equal(d.error[1], "");

	memset(&d, 0, sizeof(d));
	assert_int_equal(journal_dead_get(j, 4, dead_collect, &d), 1);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.id[0], 4);
	assert_int_equal(d.attempts[0], 1);
	assert_int_equal(journal_dead_get(j, 3, dead_collect, &d), 0);
	assert_int_equal(d.n, 1);

	/* Retry one: back in the journal with attempt 0. */
	assert_int_equal(journal_set_attempt(j, 5, 2), 0);
	assert_int_equal(journal_dead_retry(j, 2), 1);
	assert_int_equal(journal_dead_retry(j, 2), 0);
	assert_int_equal(journal_dead_count(j), 1);
	assert_int_equal(journal_count(j), 4);
	replay(j, &s);
	assert_ids(&s, (int64_t[]){ 1, 2, 3, 5 }, 4);
	assert_int_equal(s.attempt[1], 0);
	assert_string_equal(s.body[1], "{\"update_id\":2}");

	/* Retry all. */
	assert_int_equal(journal_dead_letter(j, 1, 3, "e1"), 0);
	assert_int_equal(journal_dead_letter(j, 5, 3, "e5"), 0);
	assert_int_equal(journal_dead_count(j), 3);
	assert_int_equal(journal_dead_retry(j, STORE_ALL), 3);
	assert_int_equal(journal_dead_count(j), 0);
	assert_int_equal(journal_count(j), 5);
	replay(j, &s);
	assert_ids(&s, (int64_t[]){ 1, 2, 3, 4, 5 }, 5);
	assert_int_equal(s.attempt[4], 0);

	/* Drop one, then all. */
	assert_int_equal(journal_dead_letter(j, 1, 3, "e1"), 0);
	assert_int_equal(journal_dead_letter(j, 3, 3, "e3"), 0);
	assert_int_equal(journal_dead_letter(j, 5, 3, "e5"), 0);
	assert_int_equal(journal_dead_drop(j, 3), 1);
	assert_int_equal(journal_dead_drop(j, 3), 0);
	assert_int_equal(journal_dead_count(j), 2);
	journal_close(j);

	/* All of it was committed. */
	j = jopen(p, CFG_SYNC_FULL);
	assert_int_equal(journal_dead_count(j), 2);
	assert_int_equal(journal_count(j), 2);
	assert_int_equal(journal_dead_drop(j, STORE_ALL), 2);
	assert_int_equal(journal_dead_count(j), 0);
	assert_int_equal(journal_dead_retry(j, STORE_ALL), 0);
	replay(j, &s);
	assert_ids(&s, (int64_t[]){ 2, 4 }, 2);
	journal_close(j);
}

/* ---- files that must be refused ---- */

static void write_at(const char *path, off_t at, int byte, size_t n)
{
	char buf[4096];
	int fd;

	assert_true(n <= sizeof(buf));
	memset(buf, byte, n);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, n, at), (ssize_t)n);
	close(fd);
}

static void test_corrupt_file(void **state)
{
	const char *p = tpath(0, "corrupt.db");
	struct stat sb;
	off_t pg;

	make_journal(p, 400);
	assert_int_equal(stat(p, &sb), 0);
	assert_true(sb.st_size >= 8 * 4096);
	/* Garbage over every page but the first (the header and schema). */
	for (pg = 4096; pg < sb.st_size; pg += 4096)
		write_at(p, pg, 0xa5, 4096);
	assert_open_fails(p, "is corrupt: *** in database main *** Page");
}

/* Damage that no ordinary read meets, only PRAGMA quick_check: the free list. */
static void test_corrupt_free_list(void **state)
{
	const char *p = tpath(0, "freelist.db");
	struct journal *j;
	unsigned char hdr[36];
	uint32_t trunk;
	int fd, i;

	make_journal(p, 400);
	j = jopen(p, CFG_SYNC_FULL);
	for (i = 1; i <= 400; i++)
		assert_int_equal(journal_done(j, i), 0);
	journal_close(j);
	fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, hdr, sizeof(hdr), 0), (ssize_t)sizeof(hdr));
	close(fd);
	trunk = (uint32_t)hdr[32] << 24 | (uint32_t)hdr[33] << 16 |
	    (uint32_t)hdr[34] << 8 | hdr[35];
	assert_true(trunk > 1);
	write_at(p, (off_t)(trunk - 1) * 4096, 0xa5, 4096);
	assert_open_fails(p, "is corrupt: *** in database main *** Main freelist");
}

static void test_not_a_database(void **state)
{
	const char *p = tpath(0, "text.db");
	FILE *f = fopen(p, "w");
	int i;

	assert_non_null(f);
	for (i = 0; i < 100; i++)
		fprintf(f, "this is a config file, not a database %d\n", i);
	fclose(f);
	assert_open_fails(p, "file is not a database");

	/* A journal whose header was overwritten. */
	p = tpath(0, "header.db");
	make_journal(p, 10);
	write_at(p, 0, 0x5a, 100);
	assert_open_fails(p, "file is not a database");
}

static void test_newer_schema_refused(void **state)
{
	const char *p = tpath(0, "newer.db");
	struct journal *j = jopen(p, CFG_SYNC_FULL);

	exec_sql(j, "PRAGMA user_version = 99");
	journal_close(j);
	assert_open_fails(p, "schema version 99 is newer than this tgrund supports");
}

static void test_foreign_database_refused(void **state)
{
	const char *p = tpath(0, "foreign.db");
	sqlite3 *db;

	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE users(name TEXT)", NULL,
	    NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_open_fails(p, "not a tgrun journal");
	p = tpath(0, "appid.db");
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA application_id = 1234", NULL,
	    NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_open_fails(p, "not a tgrun journal");
}

/* One master per journal: a second open is refused while the first holds it. */
static void test_second_open_refused(void **state)
{
	const char *p = tpath(0, "locked.db");
	struct journal *j = jopen(p, CFG_SYNC_FULL);

	assert_open_fails(p, "is another tgrund using it?");
	add(j, (int64_t[]){ 1 }, 1, 2, 1);
	journal_close(j);
	j = jopen(p, CFG_SYNC_FULL);
	assert_int_equal(journal_count(j), 1);
	journal_close(j);
	assert_open_fails(tmpdir, "is a directory");
}

/*
 * A batch's commit writes its rows only; its offset follows from them, and
 * goes to `meta` with the next completions, in the same transaction as the
 * deletes that take those rows away.
 */
static void test_offset_follows_the_rows(void **state)
{
	const char *p = tpath(0, "offset.db");
	struct journal *j = jopen(p, CFG_SYNC_FULL);

	add(j, (int64_t[]){ 5, 6 }, 2, 7, 2);
	assert_int_equal(offset_of(j), 7);
	journal_close(j);		/* nothing flushed: the rows say 7 */
	j = jopen(p, CFG_SYNC_FULL);
	assert_int_equal(offset_of(j), 7);
	add(j, (int64_t[]){ 9 }, 1, 10, 1);
	assert_int_equal(journal_done(j, 5), 0);
	assert_int_equal(journal_done(j, 6), 0);
	assert_int_equal(journal_done(j, 9), 0);
	assert_int_equal(journal_flush(j), 0);
	assert_int_equal(journal_count(j), 0);
	journal_close(j);		/* no rows left: meta says 10 */
	j = jopen(p, CFG_SYNC_FULL);
	assert_int_equal(offset_of(j), 10);
	/* A dead letter keeps its id: it still counts. */
	add(j, (int64_t[]){ 20 }, 1, 21, 1);
	assert_int_equal(journal_dead_letter(j, 20, 3, "x"), 0);
	journal_close(j);
	j = jopen(p, CFG_SYNC_FULL);
	assert_int_equal(offset_of(j), 21);
	journal_close(j);
}

/* A symbolic link where the journal should be is refused, not followed. */
static void test_symlink_refused(void **state)
{
	const char *target = tpath(0, "elsewhere.db");
	char link[4096];

	snprintf(link, sizeof(link), "%s", tpath(1, "link.db"));
	assert_int_equal(symlink(target, link), 0);
	assert_open_fails(link, "is a symbolic link");
	assert_int_equal(access(target, F_OK), -1);	/* nothing created there */
}

/*
 * Permission cases. As root (CI) permissions do not bind, so a child drops
 * to uid/gid 65534 first; as anyone else the modes alone refuse. The child
 * reports through its exit status: 0 = refused with the expected error.
 */
static void open_as_nobody(const char *path, const char *want)
{
	struct journal *j;
	pid_t pid;
	int st;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (geteuid() == 0 && (setgroups(0, NULL) == -1 ||
		    setresgid(NOBODY, NOBODY, NOBODY) == -1 ||
		    setresuid(NOBODY, NOBODY, NOBODY) == -1)) {
			perror("drop privileges");
			_exit(10);
		}
		j = journal_open(path, CFG_SYNC_FULL, errbuf, sizeof(errbuf));
		if (j != NULL) {
			fprintf(stderr, "journal_open(%s) succeeded as uid %d\n",
			    path, (int)getuid());
			_exit(11);
		}
		if (strstr(errbuf, want) == NULL || strstr(errbuf, path) == NULL) {
			fprintf(stderr, "journal_open(%s): \"%s\" lacks \"%s\"\n",
			    path, errbuf, want);
			_exit(12);
		}
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_unwritable_directory(void **state)
{
	const char *dir = tpath(0, "ro-dir");
	char p[1024];

	assert_int_equal(mkdir(dir, 0555), 0);
	assert_int_equal(chmod(dir, 0555), 0);
	snprintf(p, sizeof(p), "%s/new.db", dir);
	open_as_nobody(p, "cannot create: Permission denied (is the directory writable?)");
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(chmod(dir, 0755), 0);
}

/* A new directory `name` holding j.db, a journal of 5 updates; p gets its path. */
static const char *dir_with_journal(const char *name, char *p, size_t len)
{
	const char *dir = tpath(0, name);

	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(p, len, "%s/j.db", dir);
	make_journal(p, 5);
	return dir;
}

/* The file is writable but its directory is not: no room for the WAL. */
static void test_unwritable_directory_existing_file(void **state)
{
	char p[1024];
	const char *dir = dir_with_journal("ro-dir2", p, sizeof(p));

	if (geteuid() == 0)
		assert_int_equal(chown(p, NOBODY, NOBODY), 0);
	assert_int_equal(chmod(dir, 0555), 0);
	open_as_nobody(p, "is the directory writable?");
	assert_int_equal(chmod(dir, 0755), 0);
}

static void test_read_only_file(void **state)
{
	char p[1024];

	dir_with_journal("ro-file", p, sizeof(p));
	assert_int_equal(chmod(p, 0444), 0);
	open_as_nobody(p, "read-only");
	assert_int_equal(chmod(p, 0600), 0);
}

/* ---- running out of space ---- */

static void big_batch(struct journal *j, int64_t first, size_t n, int64_t off,
    int expect)
{
	static char body[6000];
	struct store_rec recs[8];
	size_t i;

	assert_true(n <= 8);
	memset(body, 'x', sizeof(body));
	body[0] = '"';
	body[sizeof(body) - 1] = '"';
	for (i = 0; i < n; i++) {
		recs[i].update_id = first + (int64_t)i;
		recs[i].body = body;
		recs[i].len = sizeof(body);
	}
	assert_int_equal(journal_add_batch(j, recs, n, off), expect);
}

static void test_disk_full(void **state)
{
	const char *p = tpath(0, "full.db");
	struct journal *j = jopen(p, CFG_SYNC_FULL);
	char sql[64];
	struct seen s;
	int64_t pages;

	big_batch(j, 1, 5, 6, 5);
	/* No page may be added: every 6000-byte body needs an overflow page. */
	pages = pragma_int(j, "PRAGMA page_count");
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld", (long long)pages);
	exec_sql(j, sql);
	assert_int_equal(pragma_int(j, "PRAGMA max_page_count"), pages);

	big_batch(j, 6, 3, 9, -1);
	assert_true(journal_disk_full(j));
	assert_int_equal(journal_errcode(j) & 0xff, SQLITE_FULL);
	assert_string_not_equal(journal_errmsg(j), "");
	/* Nothing of the failed batch, not even its offset. */
	assert_int_equal(offset_of(j), 6);
	assert_int_equal(journal_count(j), 5);
	assert_false(journal_disk_full(j));	/* a success clears it */

	/* The move to the dead letters fails whole: the update stays. */
	assert_int_equal(journal_dead_letter(j, 1, 3, "boom"), -1);
	assert_true(journal_disk_full(j));
	assert_int_equal(journal_dead_count(j), 0);
	replay(j, &s);
	assert_ids(&s, (int64_t[]){ 1, 2, 3, 4, 5 }, 5);
	big_batch(j, 6, 3, 9, -1);	/* still full */

	/* Space is back: the same writes succeed. */
	exec_sql(j, "PRAGMA max_page_count = 1000000");
	big_batch(j, 6, 3, 9, 3);
	assert_false(journal_disk_full(j));
	assert_int_equal(journal_dead_letter(j, 1, 3, "boom"), 0);
	assert_int_equal(journal_done(j, 2), 0);
	assert_int_equal(journal_flush(j), 0);
	journal_close(j);

	j = jopen(p, CFG_SYNC_FULL);
	assert_int_equal(offset_of(j), 9);
	assert_int_equal(journal_dead_count(j), 1);
	replay(j, &s);
	assert_ids(&s, (int64_t[]){ 3, 4, 5, 6, 7, 8 }, 6);
	assert_int_equal(strlen(s.body[0]), 63);	/* truncated copy of 6000 */
	journal_close(j);
}

/* ---- sync levels ---- */

static void test_sync_modes(void **state)
{
	static const struct {
		enum cfg_sync sync;
		int confirm, lazy;	/* PRAGMA synchronous after each kind of commit */
	} cases[] = {
		{ CFG_SYNC_OFF, 0, 0 },
		{ CFG_SYNC_NORMAL, 1, 1 },
		{ CFG_SYNC_FULL, 2, 1 },
	};
	struct journal *j;
	struct seen s;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *p = tpath(0, i == 0 ? "sync0.db" : i == 1 ? "sync1.db" :
		    "sync2.db");

		j = jopen(p, cases[i].sync);
		add(j, (int64_t[]){ 1, 2 }, 2, 3, 2);
		assert_int_equal(pragma_int(j, "PRAGMA synchronous"), cases[i].confirm);
		assert_int_equal(journal_done(j, 1), 0);
		assert_int_equal(journal_flush(j), 0);
		assert_int_equal(pragma_int(j, "PRAGMA synchronous"), cases[i].lazy);
		add(j, (int64_t[]){ 3 }, 1, 4, 1);
		assert_int_equal(pragma_int(j, "PRAGMA synchronous"), cases[i].confirm);
		journal_close(j);
		j = jopen(p, cases[i].sync);
		replay(j, &s);
		assert_ids(&s, (int64_t[]){ 2, 3 }, 2);
		assert_int_equal(offset_of(j), 4);
		journal_close(j);
	}
	errbuf[0] = '\0';
	assert_null(journal_open(tpath(0, "sync9.db"), (enum cfg_sync)9, errbuf,
	    sizeof(errbuf)));
	assert_non_null(strstr(errbuf, "bad sync level"));
}

/* ---- cost ---- */

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * 20,000 updates added in batches of 100, then completed and flushed in
 * batches of 200. Prints the cost; asserts only what was stored.
 */
static void timing_run(enum cfg_sync sync, const char *label, const char *name)
{
	enum { N = 20000, BATCH = 100, FLUSH = 200 };
	static char bodies[BATCH][200];
	struct store_rec recs[BATCH];
	struct journal *j = jopen(tpath(0, name), sync);
	double c0 = 0, w0 = 0, c1, w1, c2, w2;
	int64_t id = 1000000;
	int i, k;

	for (k = 0; k < N; k += BATCH) {
		for (i = 0; i < BATCH; i++, id++) {
			recs[i].update_id = id;
			recs[i].len = (size_t)snprintf(bodies[i], sizeof(bodies[i]),
			    "{\"update_id\":%lld,\"message\":{\"message_id\":%d,"
			    "\"chat\":{\"id\":12345,\"type\":\"private\"},"
			    "\"date\":1700000000,\"text\":\"hello world\"}}",
			    (long long)id, k + i);
			recs[i].body = bodies[i];
		}
		if (k == 0) {
			c0 = cpu_now();
			w0 = wall_now();
		}
		assert_int_equal(journal_add_batch(j, recs, BATCH, id), BATCH);
	}
	c1 = cpu_now();
	w1 = wall_now();
	assert_int_equal(journal_count(j), N);
	for (id = 1000000; id < 1000000 + N; id++) {
		assert_int_equal(journal_done(j, id), 0);
		if (journal_done_pending(j) == FLUSH)
			assert_int_equal(journal_flush(j), 0);
	}
	c2 = cpu_now();
	w2 = wall_now();
	assert_int_equal(journal_count(j), 0);
	assert_int_equal(pragma_int(j, "SELECT count(*) FROM updates"), 0);
	printf("journal timing sync=%-6s add %d in batches of %d: %.1f ms cpu "
	    "(%.2f us/update), %.1f ms wall; done+flush by %d: %.1f ms cpu "
	    "(%.2f us/update), %.1f ms wall\n", label, N, BATCH,
	    (c1 - c0) * 1e3, (c1 - c0) * 1e6 / N, (w1 - w0) * 1e3, FLUSH,
	    (c2 - c1) * 1e3, (c2 - c1) * 1e6 / N, (w2 - w1) * 1e3);
	journal_close(j);
}

static void test_timing(void **state)
{
	timing_run(CFG_SYNC_FULL, "full", "timing-full.db");
	timing_run(CFG_SYNC_NORMAL, "normal", "timing-normal.db");
	timing_run(CFG_SYNC_OFF, "off", "timing-off.db");
}

/* ---- fixture ---- */

static int rm_entry(const char *path, const struct stat *sb, int flag,
    struct FTW *ftw)
{
	if (flag == FTW_DP)
		return rmdir(path);
	return unlink(path);
}

static int group_setup(void **state)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/tgrun-journal-XXXXXX",
	    base && *base ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return -1;
	}
	/* The unprivileged child must reach the files inside. */
	return chmod(tmpdir, 0755);
}

static int group_teardown(void **state)
{
	return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_creates_schema),
		cmocka_unit_test(test_symlink_refused),
		cmocka_unit_test(test_offset_follows_the_rows),
		cmocka_unit_test(test_reopen_keeps_data),
		cmocka_unit_test(test_batch_and_offset_together),
		cmocka_unit_test(test_duplicates_ignored),
		cmocka_unit_test(test_done_and_flush),
		cmocka_unit_test(test_flush_failure_keeps_queue),
		cmocka_unit_test(test_replay_order_and_attempts),
		cmocka_unit_test(test_set_attempt_persists),
		cmocka_unit_test(test_callback_reentry_aborts),
		cmocka_unit_test(test_dead_letters),
		cmocka_unit_test(test_corrupt_file),
		cmocka_unit_test(test_corrupt_free_list),
		cmocka_unit_test(test_not_a_database),
		cmocka_unit_test(test_newer_schema_refused),
		cmocka_unit_test(test_foreign_database_refused),
		cmocka_unit_test(test_second_open_refused),
		cmocka_unit_test(test_unwritable_directory),
		cmocka_unit_test(test_unwritable_directory_existing_file),
		cmocka_unit_test(test_read_only_file),
		cmocka_unit_test(test_disk_full),
		cmocka_unit_test(test_sync_modes),
		cmocka_unit_test(test_timing),
	};

	/* Failures are provoked on purpose; their warnings would only be noise. */
	log_set_level(LOG_LVL_ERR);
	return cmocka_run_group_tests_name("journal", tests, group_setup,
	    group_teardown);
}
