/* The master's update journal: SQLite (WAL) file holding every fetched update until it is done. */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"

/* PRAGMA application_id of a tgrun journal: "tgrn". */
#define JOURNAL_APP_ID 0x7467726e
/* Bytes: keep the WAL file from staying large after a burst. */
#define JOURNAL_WAL_LIMIT_STR "4194304"

enum journal_stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_INSERT,
	ST_SET_OFFSET,
	ST_GET_OFFSET,
	ST_DELETE,
	ST_SET_ATTEMPT,
	ST_REPLAY,
	ST_COUNT,
	ST_DEAD_INSERT,
	ST_DEAD_LIST,
	ST_DEAD_GET,
	ST_DEAD_RETRY_ONE,
	ST_DEAD_RETRY_ALL,
	ST_DEAD_DROP_ONE,
	ST_DEAD_DROP_ALL,
	ST_DEAD_COUNT,
	ST_TOUCH,
	ST_MAX
};

static const char *const stmt_sql[ST_MAX] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	/* Not OR IGNORE: that would also skip a row breaking NOT NULL. */
	[ST_INSERT] = "INSERT INTO updates(update_id, body, attempt, fetched_at)"
	    " VALUES (?1, ?2, 0, ?3) ON CONFLICT(update_id) DO NOTHING",
	[ST_SET_OFFSET] = "INSERT INTO meta(key, value) VALUES ('offset', ?1)"
	    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
	[ST_GET_OFFSET] = "SELECT max(coalesce((SELECT value FROM meta WHERE key = 'offset'), 0),"
	    " coalesce((SELECT max(update_id) FROM updates), -1) + 1,"
	    " coalesce((SELECT max(update_id) FROM dead), -1) + 1)",
	[ST_DELETE] = "DELETE FROM updates WHERE update_id = ?1",
	[ST_SET_ATTEMPT] = "UPDATE updates SET attempt = ?2 WHERE update_id = ?1",
	[ST_REPLAY] = "SELECT update_id, body, attempt FROM updates ORDER BY update_id",
	[ST_COUNT] = "SELECT count(*) FROM updates",
	[ST_DEAD_INSERT] = "INSERT OR REPLACE INTO dead(update_id, body, attempts, error, died_at)"
	    " SELECT update_id, body, ?2, ?3, ?4 FROM updates WHERE update_id = ?1",
	[ST_DEAD_LIST] = "SELECT update_id, attempts, error, died_at, body FROM dead"
	    " ORDER BY update_id",
	[ST_DEAD_GET] = "SELECT update_id, attempts, error, died_at, body FROM dead"
	    " WHERE update_id = ?1",
	[ST_DEAD_RETRY_ONE] = "INSERT OR IGNORE INTO updates(update_id, body, attempt, fetched_at)"
	    " SELECT update_id, coalesce(body, ''), 0, ?1 FROM dead WHERE update_id = ?2",
	[ST_DEAD_RETRY_ALL] = "INSERT OR IGNORE INTO updates(update_id, body, attempt, fetched_at)"
	    " SELECT update_id, coalesce(body, ''), 0, ?1 FROM dead",
	[ST_DEAD_DROP_ONE] = "DELETE FROM dead WHERE update_id = ?1",
	[ST_DEAD_DROP_ALL] = "DELETE FROM dead",
	[ST_DEAD_COUNT] = "SELECT count(*) FROM dead",
	[ST_TOUCH] = "INSERT INTO meta(key, value) VALUES ('opened_at', ?1)"
	    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
};

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value);"
	"CREATE TABLE IF NOT EXISTS updates(update_id INTEGER PRIMARY KEY,"
	" body TEXT NOT NULL, attempt INTEGER NOT NULL, fetched_at INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS dead(update_id INTEGER PRIMARY KEY, body TEXT,"
	" attempts INTEGER, error TEXT, died_at INTEGER);";

/* PRAGMA synchronous values, indexed by enum cfg_sync. */
static const char *const sync_sql[] = {
	[CFG_SYNC_OFF] = "PRAGMA synchronous=OFF",
	[CFG_SYNC_NORMAL] = "PRAGMA synchronous=NORMAL",
	[CFG_SYNC_FULL] = "PRAGMA synchronous=FULL",
};

struct journal {
	struct store store;		/* first: a struct store * is a struct journal * */
	sqlite3 *db;
	char *path;
	char *wal_path;
	enum cfg_sync sync;		/* for commits that confirm updates */
	int cur_sync;			/* level in effect, -1 unknown */
	sqlite3_stmt *st[ST_MAX];
	int64_t nrows;			/* rows in `updates`, kept in step with commits */
	/*
	 * The offset of the last batch, written to `meta` with the next
	 * completions rather than with every batch: until then the batch's own
	 * rows say it (journal_offset() takes the highest id + 1).
	 */
	int64_t offset;
	int offset_unsaved;
	/* Completions not yet deleted; kept whole until a flush commits. */
	int64_t *done;
	size_t ndone, done_cap;
	int in_cb;			/* inside a replay/list callback */
	int last_rc;			/* extended code of the last call, 0 = ok */
	int last_errno;
	char errmsg[256];
};

static const struct store_ops sqlite_store_ops;

static void enter(struct journal *j, const char *func);
static void ok(struct journal *j);
static void note(struct journal *j);
static void fail(struct journal *j, const char *call, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int run(struct journal *j, enum journal_stmt s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), warn_unused_result));
static int set_sync(struct journal *j, enum cfg_sync level)
	__attribute__((warn_unused_result));
static int tx_begin(struct journal *j, enum cfg_sync level)
	__attribute__((warn_unused_result));
static int tx_commit(struct journal *j) __attribute__((warn_unused_result));
static void tx_rollback(struct journal *j);
static enum cfg_sync lazy_sync(const struct journal *j);
static int64_t now_sec(void);
static int cmp_id(const void *a, const void *b);

static void open_err(struct journal *j, char *err, size_t errlen);
static int precreate(const char *path, char *err, size_t errlen);
static int exec_int(struct journal *j, const char *sql, int64_t *out);
static int check_integrity(struct journal *j, char *err, size_t errlen);
static int setup_schema(struct journal *j, char *err, size_t errlen);
static int check_writable(struct journal *j, char *err, size_t errlen);

static void enter(struct journal *j, const char *func)
{
	if (j->in_cb)
		fatal_at(func, "journal %s: called from inside a journal callback",
		    j->path);
}

static void ok(struct journal *j)
{
	j->last_rc = SQLITE_OK;
	j->last_errno = 0;
	j->errmsg[0] = '\0';
}

/* Take the connection's error as the outcome of this call. */
static void note(struct journal *j)
{
	int prim;

	j->last_rc = sqlite3_extended_errcode(j->db);
	prim = j->last_rc & 0xff;
	/* The OS errno is only meaningful for errors that came from the OS. */
	j->last_errno = (prim == SQLITE_IOERR || prim == SQLITE_FULL ||
	    prim == SQLITE_CANTOPEN) ? sqlite3_system_errno(j->db) : 0;
	if (j->last_errno != 0)
		snprintf(j->errmsg, sizeof(j->errmsg), "%s: %s",
		    sqlite3_errmsg(j->db), strerror(j->last_errno));
	else
		snprintf(j->errmsg, sizeof(j->errmsg), "%s", sqlite3_errmsg(j->db));
}

/* note() and log it, naming the call and the object. */
static void fail(struct journal *j, const char *call, const char *fmt, ...)
{
	char what[128];
	va_list ap;

	note(j);
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	log_warn("journal: %s(%s): %s", call, what, j->errmsg);
}

/* Step a cached statement to its end, then reset it. */
static int run(struct journal *j, enum journal_stmt s, const char *fmt, ...)
{
	sqlite3_stmt *st = j->st[s];
	char what[128];
	va_list ap;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	if (rc == SQLITE_DONE) {
		sqlite3_reset(st);
		return 0;
	}
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	fail(j, "sqlite3_step", "%s", what);
	sqlite3_reset(st);
	return -1;
}

/*
 * PRAGMA synchronous cannot change inside a transaction and takes effect
 * when prepared, so it is run afresh, and only when the level changes.
 */
static int set_sync(struct journal *j, enum cfg_sync level)
{
	if (j->cur_sync == (int)level)
		return 0;
	if (sqlite3_exec(j->db, sync_sql[level], NULL, NULL, NULL) != SQLITE_OK) {
		fail(j, "sqlite3_exec", "%s", sync_sql[level]);
		j->cur_sync = -1;
		return -1;
	}
	j->cur_sync = (int)level;
	return 0;
}

static int tx_begin(struct journal *j, enum cfg_sync level)
{
	if (set_sync(j, level) == -1)
		return -1;
	return run(j, ST_BEGIN, "begin");
}

static int tx_commit(struct journal *j)
{
	return run(j, ST_COMMIT, "commit");
}

/*
 * After SQLITE_FULL or an I/O error SQLite may or may not have rolled the
 * transaction back itself; end it either way so the next write starts clean.
 * The recorded error (the cause) is kept.
 */
static void tx_rollback(struct journal *j)
{
	int rc;

	if (sqlite3_get_autocommit(j->db))
		return;
	rc = sqlite3_step(j->st[ST_ROLLBACK]);
	sqlite3_reset(j->st[ST_ROLLBACK]);
	if (rc != SQLITE_DONE)
		log_err("journal: sqlite3_step(rollback %s): %s", j->path,
		    sqlite3_errmsg(j->db));
}

/* The level for commits whose loss only means re-running work. */
static enum cfg_sync lazy_sync(const struct journal *j)
{
	return j->sync < CFG_SYNC_NORMAL ? j->sync : CFG_SYNC_NORMAL;
}

static int64_t now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* ---- opening ---- */

/* The recorded SQLite failure as one line naming the path and the cause. */
static void open_err(struct journal *j, char *err, size_t errlen)
{
	const char *p = j->path, *m = j->errmsg;

	if (j->last_rc == SQLITE_READONLY_DIRECTORY) {
		snprintf(err, errlen, "journal %s: read-only: %s (is the directory "
		    "writable? the WAL file is created next to the journal)", p, m);
		return;
	}
	switch (j->last_rc & 0xff) {
	case SQLITE_CANTOPEN:
		snprintf(err, errlen, "journal %s: %s (is the directory writable?)",
		    p, m);
		break;
	case SQLITE_CORRUPT:
		snprintf(err, errlen, "journal %s: is corrupt: %s", p, m);
		break;
	case SQLITE_READONLY:
	case SQLITE_PERM:
		snprintf(err, errlen, "journal %s: read-only: %s (check the owner "
		    "and mode of the file and its directory)", p, m);
		break;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		snprintf(err, errlen, "journal %s: %s (is another tgrund using it?)",
		    p, m);
		break;
	default:
		snprintf(err, errlen, "journal %s: %s", p, m);
		break;
	}
}

/*
 * Create the file ourselves so it gets mode 0600 (SQLite would use 0644, and
 * gives -wal the mode of the database), and so a permission problem is told
 * by its errno rather than by SQLite quietly opening read-only.
 */
static int precreate(const char *path, char *err, size_t errlen)
{
	struct stat sb;
	int fd, e;

	/* A link in its place could make the daemon write wherever it points. */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1) {
		e = errno;
		if (e == ELOOP)
			snprintf(err, errlen, "journal %s: is a symbolic link; give the "
			    "path of the file itself", path);
		else if (e == EISDIR)
			snprintf(err, errlen, "journal %s: is a directory", path);
		else if ((e == EACCES || e == EPERM || e == EROFS) &&
		    stat(path, &sb) == 0)
			snprintf(err, errlen, "journal %s: read-only: %s (check the "
			    "owner and mode of the file)", path, strerror(e));
		else if (e == EACCES || e == EPERM || e == EROFS)
			snprintf(err, errlen, "journal %s: cannot create: %s (is the "
			    "directory writable?)", path, strerror(e));
		else if (e == ENOENT)
			snprintf(err, errlen, "journal %s: cannot create: %s (does the "
			    "directory exist?)", path, strerror(e));
		else
			snprintf(err, errlen, "journal %s: open: %s", path, strerror(e));
		return -1;
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "journal %s: not a regular file", path);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* Run a statement giving one integer (a pragma, a count); 0 or -1 noted. */
static int exec_int(struct journal *j, const char *sql, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK)
		goto fail;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		goto fail;
	*out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return 0;
fail:
	note(j);
	sqlite3_finalize(st);
	return -1;
}

static int check_integrity(struct journal *j, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	const char *res;
	char *p;

	if (sqlite3_prepare_v2(j->db, "PRAGMA quick_check(1)", -1, &st, NULL)
	    != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
		goto fail;
	res = (const char *)sqlite3_column_text(st, 0);
	if (res == NULL || strcmp(res, "ok") != 0) {
		snprintf(err, errlen, "journal %s: is corrupt: %s", j->path,
		    res ? res : "quick_check gave no answer");
		/* The report may span lines; the error is one. */
		for (p = err; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return 0;
fail:
	note(j);
	open_err(j, err, errlen);
	sqlite3_finalize(st);
	return -1;
}

static int setup_schema(struct journal *j, char *err, size_t errlen)
{
	int64_t app, ver, ntables;
	char sql[96];

	if (exec_int(j, "PRAGMA application_id", &app) == -1 ||
	    exec_int(j, "PRAGMA user_version", &ver) == -1 ||
	    exec_int(j, "SELECT count(*) FROM sqlite_schema", &ntables) == -1)
		goto fail;
	if (app != 0 && app != JOURNAL_APP_ID) {
		snprintf(err, errlen, "journal %s: not a tgrun journal "
		    "(application_id 0x%08llx)", j->path, (unsigned long long)app);
		return -1;
	}
	if (ver > JOURNAL_SCHEMA_VERSION) {
		snprintf(err, errlen, "journal %s: schema version %lld is newer than "
		    "this tgrund supports (%d); refusing to open it", j->path,
		    (long long)ver, JOURNAL_SCHEMA_VERSION);
		return -1;
	}
	if (ver == 0 && app == 0 && ntables != 0) {
		snprintf(err, errlen, "journal %s: not a tgrun journal (an SQLite "
		    "database of something else)", j->path);
		return -1;
	}
	if (ver == JOURNAL_SCHEMA_VERSION)
		return 0;
	/* A new file; migrations from older versions would go here. */
	snprintf(sql, sizeof(sql), "PRAGMA application_id=%d; PRAGMA user_version=%d;",
	    JOURNAL_APP_ID, JOURNAL_SCHEMA_VERSION);
	if (sqlite3_exec(j->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	if (sqlite3_exec(j->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(j->db, sql, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail_tx;
	return 0;
fail_tx:
	note(j);
	if (!sqlite3_get_autocommit(j->db))
		sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
	open_err(j, err, errlen);
	return -1;
fail:
	note(j);
	open_err(j, err, errlen);
	return -1;
}

/* A real write transaction: proves the file, the WAL and the directory writable. */
static int check_writable(struct journal *j, char *err, size_t errlen)
{
	if (tx_begin(j, lazy_sync(j)) == -1)
		goto fail;
	sqlite3_bind_int64(j->st[ST_TOUCH], 1, now_sec());
	if (run(j, ST_TOUCH, "write check %s", j->path) == -1)
		goto fail_tx;
	if (tx_commit(j) == -1)
		goto fail_tx;
	return 0;
fail_tx:
	tx_rollback(j);
fail:
	open_err(j, err, errlen);
	return -1;
}

struct journal *journal_open(const char *path, enum cfg_sync sync, char *err,
    size_t errlen)
{
	struct journal *j;
	sqlite3_stmt *st = NULL;
	char mode[16];
	int64_t v;
	int rc, i;

	if (sync != CFG_SYNC_OFF && sync != CFG_SYNC_NORMAL && sync != CFG_SYNC_FULL) {
		snprintf(err, errlen, "journal %s: bad sync level %d", path, (int)sync);
		return NULL;
	}
	j = calloc(1, sizeof(*j));
	if (j != NULL)
		j->store.ops = &sqlite_store_ops;
	if (j == NULL)
		goto fail_oom;
	j->sync = sync;
	j->cur_sync = -1;
	j->path = strdup(path);
	if (j->path == NULL || asprintf(&j->wal_path, "%s-wal", path) == -1) {
		j->wal_path = NULL;
		goto fail_oom;
	}
	if (precreate(path, err, errlen) == -1)
		goto fail;
	rc = sqlite3_open_v2(path, &j->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK) {
		if (j->db != NULL) {
			note(j);
		} else {
			j->last_rc = rc;
			snprintf(j->errmsg, sizeof(j->errmsg), "%s", sqlite3_errstr(rc));
		}
		goto fail_sqlite;
	}
	sqlite3_extended_result_codes(j->db, 1);
	if (sqlite3_db_readonly(j->db, "main") == 1) {
		snprintf(err, errlen, "journal %s: read-only: SQLite could only open "
		    "it for reading (check the owner and mode of the file)", path);
		goto fail;
	}
	/*
	 * Exclusive locking before the first read: one master per journal, and
	 * the WAL index lives in heap memory (no -shm file). The first read
	 * also tells a file that is not a database.
	 */
	if (sqlite3_exec(j->db, "PRAGMA locking_mode=EXCLUSIVE", NULL, NULL, NULL)
	    != SQLITE_OK) {
		note(j);
		goto fail_sqlite;
	}
	if (exec_int(j, "PRAGMA schema_version", &v) == -1)
		goto fail_sqlite;
	if (check_integrity(j, err, errlen) == -1)
		goto fail;
	if (sqlite3_prepare_v2(j->db, "PRAGMA journal_mode=WAL", -1, &st, NULL)
	    != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
		note(j);
		goto fail_sqlite;
	}
	snprintf(mode, sizeof(mode), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	st = NULL;
	if (strcmp(mode, "wal") != 0) {
		snprintf(err, errlen, "journal %s: cannot use WAL mode (got \"%s\")",
		    path, mode);
		goto fail;
	}
	if (exec_int(j, "PRAGMA journal_size_limit=" JOURNAL_WAL_LIMIT_STR, &v) == -1)
		goto fail_sqlite;
	if (setup_schema(j, err, errlen) == -1)
		goto fail;
	for (i = 0; i < ST_MAX; i++) {
		if (sqlite3_prepare_v3(j->db, stmt_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &j->st[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "journal %s: sqlite3_prepare(%s): %s",
			    path, stmt_sql[i], sqlite3_errmsg(j->db));
			goto fail;
		}
	}
	if (check_writable(j, err, errlen) == -1)
		goto fail;
	if (exec_int(j, stmt_sql[ST_COUNT], &j->nrows) == -1)
		goto fail_sqlite;
	ok(j);
	return j;

fail_sqlite:
	open_err(j, err, errlen);
	goto fail;
fail_oom:
	snprintf(err, errlen, "journal %s: out of memory", path);
fail:
	sqlite3_finalize(st);
	if (j != NULL) {
		for (i = 0; i < ST_MAX; i++)
			sqlite3_finalize(j->st[i]);
		sqlite3_close(j->db);
		free(j->wal_path);
		free(j->path);
		free(j);
	}
	return NULL;
}

void journal_close(struct journal *j)
{
	int i;

	if (j == NULL)
		return;
	if (j->ndone > 0 && journal_flush(j) == -1)
		log_warn("journal %s: %zu completions not flushed; those updates "
		    "will run again", j->path, j->ndone);
	if (sqlite3_exec(j->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL,
	    NULL) != SQLITE_OK)
		log_warn("journal: sqlite3_exec(checkpoint %s): %s", j->path,
		    sqlite3_errmsg(j->db));
	for (i = 0; i < ST_MAX; i++)
		sqlite3_finalize(j->st[i]);
	if (sqlite3_close(j->db) != SQLITE_OK)
		log_warn("journal: sqlite3_close(%s): %s", j->path,
		    sqlite3_errmsg(j->db));
	free(j->done);
	free(j->wal_path);
	free(j->path);
	free(j);
}

/* ---- updates ---- */

int journal_add_batch(struct journal *j, const struct store_rec *recs,
    size_t n, int64_t next_offset)
{
	sqlite3_stmt *ins = j->st[ST_INSERT];
	int64_t now = now_sec();
	int added = 0;
	size_t i;

	enter(j, __func__);
	if (n > INT_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (tx_begin(j, j->sync) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		sqlite3_bind_int64(ins, 1, recs[i].update_id);
		sqlite3_bind_text64(ins, 2, recs[i].body, recs[i].len, SQLITE_STATIC,
		    SQLITE_UTF8);
		sqlite3_bind_int64(ins, 3, now);
		if (run(j, ST_INSERT, "insert update %lld",
		    (long long)recs[i].update_id) == -1)
			goto fail;
		added += sqlite3_changes(j->db);
	}
	/*
	 * One page fewer per commit: a batch's rows imply its offset, which
	 * goes to `meta` with the next completions. Without rows, write it now.
	 */
	if (n == 0) {
		sqlite3_bind_int64(j->st[ST_SET_OFFSET], 1, next_offset);
		if (run(j, ST_SET_OFFSET, "store offset %lld",
		    (long long)next_offset) == -1)
			goto fail;
	}
	if (tx_commit(j) == -1)
		goto fail;
	if (next_offset > j->offset || n == 0) {
		j->offset = next_offset;
		j->offset_unsaved = n > 0;
	}
	/* The body pointers belong to the caller. */
	sqlite3_clear_bindings(ins);
	j->nrows += added;
	ok(j);
	return added;
fail:
	tx_rollback(j);
	sqlite3_clear_bindings(ins);
	return -1;
}

int journal_set_offset(struct journal *j, int64_t offset)
{
	return journal_add_batch(j, NULL, 0, offset) == -1 ? -1 : 0;
}

int journal_offset(struct journal *j, int64_t *out)
{
	sqlite3_stmt *st = j->st[ST_GET_OFFSET];
	int rc;

	enter(j, __func__);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	else if (rc == SQLITE_DONE)
		*out = 0;
	else
		fail(j, "sqlite3_step", "read offset");
	/* A batch of this run whose offset is not in `meta` yet. */
	if ((rc == SQLITE_ROW || rc == SQLITE_DONE) && j->offset > *out)
		*out = j->offset;
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return -1;
	ok(j);
	return 0;
}

int journal_done(struct journal *j, int64_t update_id)
{
	int64_t *p;
	size_t cap;

	enter(j, __func__);
	if (j->ndone == j->done_cap) {
		cap = j->done_cap ? j->done_cap * 2 : 256;
		p = realloc(j->done, cap * sizeof(*p));
		if (p == NULL) {
			log_warn("journal: realloc(done queue of %zu): %s", cap,
			    strerror(errno));
			errno = ENOMEM;
			return -1;
		}
		j->done = p;
		j->done_cap = cap;
	}
	j->done[j->ndone++] = update_id;
	return 0;
}

size_t journal_done_pending(const struct journal *j)
{
	return j->ndone;
}

int journal_flush(struct journal *j)
{
	sqlite3_stmt *del = j->st[ST_DELETE];
	int64_t deleted = 0;
	size_t i;

	enter(j, __func__);
	if (j->ndone == 0)
		return 0;
	if (tx_begin(j, lazy_sync(j)) == -1)
		return -1;
	for (i = 0; i < j->ndone; i++) {
		sqlite3_bind_int64(del, 1, j->done[i]);
		if (run(j, ST_DELETE, "delete update %lld",
		    (long long)j->done[i]) == -1)
			goto fail;
		deleted += sqlite3_changes(j->db);
	}
	/* The rows that implied the offset may go now: keep it in `meta`. */
	if (j->offset_unsaved) {
		sqlite3_bind_int64(j->st[ST_SET_OFFSET], 1, j->offset);
		if (run(j, ST_SET_OFFSET, "store offset %lld", (long long)j->offset) == -1)
			goto fail;
	}
	if (tx_commit(j) == -1)
		goto fail;
	j->offset_unsaved = 0;
	j->nrows -= deleted;
	j->ndone = 0;
	ok(j);
	return 0;
fail:
	tx_rollback(j);
	return -1;
}

int journal_set_attempt(struct journal *j, int64_t update_id, int attempt)
{
	sqlite3_stmt *st = j->st[ST_SET_ATTEMPT];

	enter(j, __func__);
	if (set_sync(j, lazy_sync(j)) == -1)
		return -1;
	sqlite3_bind_int64(st, 1, update_id);
	sqlite3_bind_int(st, 2, attempt);
	if (run(j, ST_SET_ATTEMPT, "set attempt of update %lld",
	    (long long)update_id) == -1)
		return -1;
	ok(j);
	return 0;
}

int journal_replay(struct journal *j, store_update_cb cb, void *arg)
{
	sqlite3_stmt *st = j->st[ST_REPLAY];
	const char *body;
	int64_t id;
	int rc, r = 0;

	enter(j, __func__);
	/* Unflushed completions are finished work: delete them, else skip them. */
	if (j->ndone > 0 && journal_flush(j) == -1)
		qsort(j->done, j->ndone, sizeof(*j->done), cmp_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		id = sqlite3_column_int64(st, 0);
		if (j->ndone > 0 && bsearch(&id, j->done, j->ndone,
		    sizeof(*j->done), cmp_id) != NULL)
			continue;
		body = (const char *)sqlite3_column_text(st, 1);
		j->in_cb = 1;
		r = cb(arg, id, body ? body : "", (size_t)sqlite3_column_bytes(st, 1),
		    sqlite3_column_int(st, 2));
		j->in_cb = 0;
		if (r != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		fail(j, "sqlite3_step", "replay");
		sqlite3_reset(st);
		return -1;
	}
	sqlite3_reset(st);
	ok(j);
	return r;
}

int64_t journal_count(const struct journal *j)
{
	int64_t n = j->nrows - (int64_t)j->ndone;

	return n < 0 ? 0 : n;
}

/* ---- dead letters ---- */

int journal_dead_letter(struct journal *j, int64_t update_id, int attempts,
    const char *error)
{
	sqlite3_stmt *ins = j->st[ST_DEAD_INSERT];

	enter(j, __func__);
	if (tx_begin(j, lazy_sync(j)) == -1)
		return -1;
	sqlite3_bind_int64(ins, 1, update_id);
	sqlite3_bind_int(ins, 2, attempts);
	if (error != NULL)
		sqlite3_bind_text(ins, 3, error, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(ins, 3);
	sqlite3_bind_int64(ins, 4, now_sec());
	if (run(j, ST_DEAD_INSERT, "dead-letter update %lld",
	    (long long)update_id) == -1)
		goto fail;
	if (sqlite3_changes(j->db) == 0) {
		tx_rollback(j);
		sqlite3_clear_bindings(ins);
		j->last_rc = SQLITE_NOTFOUND;
		j->last_errno = 0;
		snprintf(j->errmsg, sizeof(j->errmsg), "update %lld is not in the "
		    "journal", (long long)update_id);
		log_warn("journal: dead-letter update %lld: not in the journal",
		    (long long)update_id);
		errno = ENOENT;
		return -1;
	}
	sqlite3_bind_int64(j->st[ST_DELETE], 1, update_id);
	if (run(j, ST_DELETE, "delete update %lld", (long long)update_id) == -1)
		goto fail;
	if (tx_commit(j) == -1)
		goto fail;
	sqlite3_clear_bindings(ins);
	j->nrows--;
	ok(j);
	return 0;
fail:
	tx_rollback(j);
	sqlite3_clear_bindings(ins);
	return -1;
}

/* Walk a dead-letter query, calling cb per row; see journal_dead_list(). */
static int dead_walk(struct journal *j, sqlite3_stmt *st, store_dead_cb cb,
    void *arg, int *found)
{
	struct store_dead d;
	int rc, r = 0;

	*found = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		d.update_id = sqlite3_column_int64(st, 0);
		d.attempts = sqlite3_column_int(st, 1);
		d.error = (const char *)sqlite3_column_text(st, 2);
		if (d.error == NULL)
			d.error = "";
		d.died_at = sqlite3_column_int64(st, 3);
		d.body = (const char *)sqlite3_column_text(st, 4);
		d.len = (size_t)sqlite3_column_bytes(st, 4);
		if (d.body == NULL)
			d.body = "";
		(*found)++;
		j->in_cb = 1;
		r = cb(arg, &d);
		j->in_cb = 0;
		if (r != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		fail(j, "sqlite3_step", "list dead letters");
		sqlite3_reset(st);
		return -1;
	}
	sqlite3_reset(st);
	ok(j);
	return r;
}

int journal_dead_list(struct journal *j, store_dead_cb cb, void *arg)
{
	int found;

	enter(j, __func__);
	return dead_walk(j, j->st[ST_DEAD_LIST], cb, arg, &found);
}

int journal_dead_get(struct journal *j, int64_t update_id, store_dead_cb cb,
    void *arg)
{
	int found;

	enter(j, __func__);
	sqlite3_bind_int64(j->st[ST_DEAD_GET], 1, update_id);
	if (dead_walk(j, j->st[ST_DEAD_GET], cb, arg, &found) == -1)
		return -1;
	return found > 0;
}

int64_t journal_dead_retry(struct journal *j, int64_t update_id)
{
	enum journal_stmt ins = update_id == STORE_ALL ? ST_DEAD_RETRY_ALL :
	    ST_DEAD_RETRY_ONE;
	enum journal_stmt del = update_id == STORE_ALL ? ST_DEAD_DROP_ALL :
	    ST_DEAD_DROP_ONE;
	int64_t inserted, moved;

	enter(j, __func__);
	if (tx_begin(j, lazy_sync(j)) == -1)
		return -1;
	sqlite3_bind_int64(j->st[ins], 1, now_sec());
	if (update_id != STORE_ALL) {
		sqlite3_bind_int64(j->st[ins], 2, update_id);
		sqlite3_bind_int64(j->st[del], 1, update_id);
	}
	if (run(j, ins, "retry dead letter %lld", (long long)update_id) == -1)
		goto fail;
	inserted = sqlite3_changes(j->db);
	if (run(j, del, "delete dead letter %lld", (long long)update_id) == -1)
		goto fail;
	moved = sqlite3_changes(j->db);
	if (tx_commit(j) == -1)
		goto fail;
	j->nrows += inserted;
	ok(j);
	return moved;
fail:
	tx_rollback(j);
	return -1;
}

int64_t journal_dead_drop(struct journal *j, int64_t update_id)
{
	enum journal_stmt del = update_id == STORE_ALL ? ST_DEAD_DROP_ALL :
	    ST_DEAD_DROP_ONE;

	enter(j, __func__);
	if (set_sync(j, lazy_sync(j)) == -1)
		return -1;
	if (update_id != STORE_ALL)
		sqlite3_bind_int64(j->st[del], 1, update_id);
	if (run(j, del, "drop dead letter %lld", (long long)update_id) == -1)
		return -1;
	ok(j);
	return sqlite3_changes(j->db);
}

int64_t journal_dead_count(struct journal *j)
{
	sqlite3_stmt *st = j->st[ST_DEAD_COUNT];
	int64_t n = -1;

	enter(j, __func__);
	if (sqlite3_step(st) == SQLITE_ROW) {
		n = sqlite3_column_int64(st, 0);
		ok(j);
	} else {
		fail(j, "sqlite3_step", "count dead letters");
	}
	sqlite3_reset(st);
	return n;
}

/* ---- errors and metrics ---- */

int journal_errcode(const struct journal *j)
{
	return j->last_rc;
}

int journal_syserrno(const struct journal *j)
{
	return j->last_errno;
}

const char *journal_errmsg(const struct journal *j)
{
	return j->errmsg;
}

bool journal_disk_full(const struct journal *j)
{
	int prim = j->last_rc & 0xff;

	return prim == SQLITE_FULL || (prim == SQLITE_IOERR &&
	    (j->last_errno == ENOSPC || j->last_errno == EDQUOT));
}

int64_t journal_size_bytes(const struct journal *j)
{
	struct stat sb;
	int64_t n;

	if (stat(j->path, &sb) == -1)
		return -1;
	n = (int64_t)sb.st_size;
	if (stat(j->wal_path, &sb) == 0)
		n += (int64_t)sb.st_size;
	return n;
}

struct sqlite3 *journal_db(struct journal *j)
{
	return j->db;
}

/* ---- the journal as a store (store.h) ---------------------------------------------- */

#define J(s) ((struct journal *)(s))
#define CJ(s) ((const struct journal *)(s))

static int st_add_batch(struct store *s, const struct store_rec *r, size_t n, int64_t off)
{
	return journal_add_batch(J(s), r, n, off);
}
static int st_offset(struct store *s, int64_t *out) { return journal_offset(J(s), out); }
static int st_done(struct store *s, int64_t id) { return journal_done(J(s), id); }
static size_t st_done_pending(const struct store *s) { return journal_done_pending(CJ(s)); }
static int st_flush(struct store *s) { return journal_flush(J(s)); }
static int st_set_attempt(struct store *s, int64_t id, int attempt)
{
	return journal_set_attempt(J(s), id, attempt);
}
static int st_replay(struct store *s, store_update_cb cb, void *arg)
{
	return journal_replay(J(s), cb, arg);
}
static int st_dead_letter(struct store *s, int64_t id, int attempts, const char *error)
{
	return journal_dead_letter(J(s), id, attempts, error);
}
static int st_dead_list(struct store *s, store_dead_cb cb, void *arg)
{
	return journal_dead_list(J(s), cb, arg);
}
static int st_dead_get(struct store *s, int64_t id, store_dead_cb cb, void *arg)
{
	return journal_dead_get(J(s), id, cb, arg);
}
static int64_t st_dead_retry(struct store *s, int64_t id) { return journal_dead_retry(J(s), id); }
static int64_t st_dead_drop(struct store *s, int64_t id) { return journal_dead_drop(J(s), id); }
static int64_t st_dead_count(struct store *s) { return journal_dead_count(J(s)); }
static const char *st_errmsg(const struct store *s) { return journal_errmsg(CJ(s)); }
static bool st_disk_full(const struct store *s) { return journal_disk_full(CJ(s)); }
static int64_t st_size_bytes(const struct store *s) { return journal_size_bytes(CJ(s)); }
static void st_close(struct store *s) { journal_close(J(s)); }

static const struct store_ops sqlite_store_ops = {
	.add_batch = st_add_batch, .offset = st_offset, .done = st_done,
	.done_pending = st_done_pending, .flush = st_flush,
	.set_attempt = st_set_attempt, .replay = st_replay,
	.dead_letter = st_dead_letter, .dead_list = st_dead_list,
	.dead_get = st_dead_get, .dead_retry = st_dead_retry,
	.dead_drop = st_dead_drop, .dead_count = st_dead_count,
	.errmsg = st_errmsg, .disk_full = st_disk_full,
	.size_bytes = st_size_bytes, .close = st_close,
};

struct store *journal_store(struct journal *j)
{
	return j != NULL ? &j->store : NULL;
}
