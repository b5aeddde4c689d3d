/*
 * The store interface (daemon/store.h) as the master uses it, run against the
 * SQLite journal. The checks take only a struct store *, so another store
 * (the cluster's) runs the same ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "journal.h"
#include "store.h"
#include "store_conformance.h"

static void test_sqlite_journal_is_a_store(void **state)
{
	char dir[] = "/tmp/tgrun-store-XXXXXX", path[256], err[256];
	struct store *st;
	struct seen s;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/journal.db", dir);
	st = journal_store(journal_open(path, CFG_SYNC_FULL, err, sizeof(err)));
	assert_non_null(st);
	conformance(st);
	/* Queued completions survive a close, as the master's stop relies on. */
	assert_int_equal(store_done(st, 12), 0);
	store_close(st);
	st = journal_store(journal_open(path, CFG_SYNC_FULL, err, sizeof(err)));
	assert_non_null(st);
	s = replay(st);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.ids[0], 10);
	store_close(st);
	store_close(NULL);
	unlink(path);
	snprintf(path, sizeof(path), "%s/journal.db-wal", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/journal.db-shm", dir);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sqlite_journal_is_a_store),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
