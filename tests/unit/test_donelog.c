/* Unit tests for common/donelog.c: records written and read back, torn and foreign bytes, the lock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "donelog.h"

static char tmpdir[256];

/* A fresh, empty done log in the private directory. */
static int fresh(const char *name)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	unlink(path);
	fd = donelog_open(path);
	assert_true(fd >= 0);
	return fd;
}

static int reopen(const char *name)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fd = donelog_open(path);
	assert_true(fd >= 0);
	return fd;
}

/* Read the whole log; the ids must be `want`, and `skipped` bytes not records. */
static void expect(int fd, const int64_t *want, size_t n, size_t skipped)
{
	int64_t *ids;
	size_t got, bad;

	assert_int_equal(donelog_read(fd, &ids, &got, &bad), 0);
	assert_int_equal(got, n);
	assert_int_equal(bad, skipped);
	for (size_t i = 0; i < n; i++)
		assert_true(ids[i] == want[i]);
	if (n == 0)
		assert_null(ids);
	free(ids);
}

static off_t size_of(int fd)
{
	struct stat sb;

	assert_int_equal(fstat(fd, &sb), 0);
	return sb.st_size;
}

static void test_empty_file(void **state)
{
	int fd = fresh("empty");

	expect(fd, NULL, 0, 0);
	close(fd);
}

static void test_roundtrip_in_order_with_duplicates(void **state)
{
	static const int64_t ids[] = { 7, 0, 123456789012345, INT64_MAX, 7 };
	int fd = fresh("roundtrip");

	assert_int_equal(donelog_append(fd, ids, 3), 0);
	assert_int_equal(donelog_append(fd, ids + 3, 2), 0);
	assert_int_equal(size_of(fd), 5 * DONELOG_REC);
	expect(fd, ids, 5, 0);
	close(fd);
	/* What a killed writer left is there for the next open. */
	fd = reopen("roundtrip");
	expect(fd, ids, 5, 0);
	close(fd);
}

static void test_large_batch_spans_chunks(void **state)
{
	enum { N = 5000 };
	int64_t *ids = malloc(N * sizeof(*ids));
	int fd = fresh("large");

	for (int i = 0; i < N; i++)
		ids[i] = 1000000 + i;
	assert_int_equal(donelog_append(fd, ids, N), 0);
	expect(fd, ids, N, 0);
	free(ids);
	close(fd);
}

static void test_appends_from_two_opens_interleave_whole(void **state)
{
	static const int64_t a[] = { 1, 2 }, b[] = { 3 }, all[] = { 1, 2, 3, 1, 2 };
	int fd = fresh("two"), fd2 = reopen("two");

	/* O_APPEND: each write lands at the end, whoever wrote last. */
	assert_int_equal(donelog_append(fd, a, 2), 0);
	assert_int_equal(donelog_append(fd2, b, 1), 0);
	assert_int_equal(donelog_append(fd, a, 2), 0);
	expect(fd2, all, 5, 0);
	close(fd);
	close(fd2);
}

static void test_truncate_then_append(void **state)
{
	static const int64_t a[] = { 10, 11, 12 }, b[] = { 13 };
	int fd = fresh("trunc");

	assert_int_equal(donelog_append(fd, a, 3), 0);
	assert_int_equal(donelog_truncate(fd), 0);
	expect(fd, NULL, 0, 0);
	assert_int_equal(donelog_append(fd, b, 1), 0);
	assert_int_equal(size_of(fd), DONELOG_REC);
	expect(fd, b, 1, 0);
	close(fd);
}

static void test_torn_last_record_is_ignored(void **state)
{
	static const int64_t a[] = { 40, 41 };
	unsigned char rec[2 * DONELOG_REC];
	int fd = fresh("torn"), tmp = fresh("torn-src");

	/* A writer killed in the middle of its second record. */
	assert_int_equal(donelog_append(tmp, a, 2), 0);
	assert_int_equal(pread(tmp, rec, sizeof(rec), 0), (ssize_t)sizeof(rec));
	assert_int_equal(write(fd, rec, DONELOG_REC + 5), DONELOG_REC + 5);
	expect(fd, a, 1, 5);
	close(fd);
	close(tmp);
}

static void test_torn_record_in_the_middle_resyncs(void **state)
{
	static const int64_t a[] = { 50, 51, 52 }, want[] = { 50, 52 };
	unsigned char rec[3 * DONELOG_REC];
	int fd = fresh("resync"), tmp = fresh("resync-src");

	/* 50 whole, 7 bytes of 51 (its writer was cut short), then 52 from another. */
	assert_int_equal(donelog_append(tmp, a, 3), 0);
	assert_int_equal(pread(tmp, rec, sizeof(rec), 0), (ssize_t)sizeof(rec));
	assert_int_equal(write(fd, rec, DONELOG_REC + 7), DONELOG_REC + 7);
	assert_int_equal(write(fd, rec + 2 * DONELOG_REC, DONELOG_REC), DONELOG_REC);
	expect(fd, want, 2, 7);
	close(fd);
	close(tmp);
}

static void test_foreign_bytes_are_no_ids(void **state)
{
	static const int64_t a[] = { 60 };
	unsigned char junk[4096];
	unsigned seed = 1;
	int fd = fresh("foreign");

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)rand_r(&seed);
	assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	assert_int_equal(donelog_append(fd, a, 1), 0);
	/* Random bytes never check out; the record after them does. */
	expect(fd, a, 1, sizeof(junk));
	close(fd);
}

static void test_negative_ids_are_refused(void **state)
{
	static const int64_t a[] = { -5, 70 }, want[] = { 70 };
	int fd = fresh("negative");

	/* A check word read as an id is negative: never taken for an update. */
	assert_int_equal(donelog_append(fd, a, 2), 0);
	expect(fd, want, 1, DONELOG_REC);
	close(fd);
}

static void test_lock_held_until_every_holder_closed(void **state)
{
	int fd = fresh("lock"), other = reopen("lock"), st;
	int go[2];
	pid_t pid;
	char c;

	assert_int_equal(donelog_trylock(fd), 0);
	assert_int_equal(donelog_trylock(fd), 0);	/* again on the same open: fine */
	assert_int_equal(donelog_trylock(other), 1);
	/* A worker: it inherits the open file, so the lock outlives the master's fd. */
	assert_int_equal(pipe(go), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(go[1]);
		while (read(go[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(go[0]);
	close(fd);
	assert_int_equal(donelog_trylock(other), 1);
	close(go[1]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_int_equal(donelog_trylock(other), 0);
	close(other);
}

static void test_open_refuses_what_is_not_a_file(void **state)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/dir.done", tmpdir);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(donelog_open(path), -1);
	snprintf(path, sizeof(path), "%s/link.done", tmpdir);
	assert_int_equal(symlink("empty", path), 0);
	assert_int_equal(donelog_open(path), -1);
	assert_int_equal(errno, ELOOP);
}

static void test_created_private(void **state)
{
	int fd = fresh("mode");
	struct stat sb;

	assert_int_equal(fstat(fd, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_true(fcntl(fd, F_GETFL) & O_APPEND);
	close(fd);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
	if (flag == FTW_DP)
		return rmdir(path);
	return unlink(path);
}

static int group_setup(void **state)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/tgrun-donelog-XXXXXX",
	    base && *base ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_roundtrip_in_order_with_duplicates),
		cmocka_unit_test(test_large_batch_spans_chunks),
		cmocka_unit_test(test_appends_from_two_opens_interleave_whole),
		cmocka_unit_test(test_truncate_then_append),
		cmocka_unit_test(test_torn_last_record_is_ignored),
		cmocka_unit_test(test_torn_record_in_the_middle_resyncs),
		cmocka_unit_test(test_foreign_bytes_are_no_ids),
		cmocka_unit_test(test_negative_ids_are_refused),
		cmocka_unit_test(test_lock_held_until_every_holder_closed),
		cmocka_unit_test(test_open_refuses_what_is_not_a_file),
		cmocka_unit_test(test_created_private),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("donelog", tests, group_setup, group_teardown);
}
