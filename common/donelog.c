/* The done log: ids of finished updates appended next to the journal, read back by the next master. */
#include "donelog.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * The check word is the id XOR this. Its top bit is set: a record read 8
 * bytes off (a check word taken for an id) gives a negative id, refused.
 */
#define DONELOG_MAGIC 0xd0e1a5c3b2f49687ULL
/* Records per write(): 4 KiB. */
#define CHUNK 256

static void put_rec(unsigned char *p, int64_t id)
{
	uint64_t a = htole64((uint64_t)id), b = htole64((uint64_t)id ^ DONELOG_MAGIC);

	memcpy(p, &a, 8);
	memcpy(p + 8, &b, 8);
}

/* 1 and *id when the 16 bytes at `p` are a record, else 0. */
static int get_rec(const unsigned char *p, int64_t *id)
{
	uint64_t a, b;

	memcpy(&a, p, 8);
	memcpy(&b, p + 8, 8);
	a = le64toh(a);
	b = le64toh(b);
	if ((a ^ DONELOG_MAGIC) != b || (int64_t)a < 0)
		return 0;
	*id = (int64_t)a;
	return 1;
}

int donelog_open(const char *path)
{
	struct stat sb;
	int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600), e = 0;

	if (fd < 0)
		return -1;
	if (fstat(fd, &sb) != 0)
		e = errno;
	else if (!S_ISREG(sb.st_mode))
		e = EINVAL;
	if (e != 0) {
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int donelog_trylock(int fd)
{
	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK)
			return 1;
		if (errno != EINTR)
			return -1;
	}
	return 0;
}

/* Write all of buf (O_APPEND: each piece goes to the end). */
static int write_all(int fd, const unsigned char *buf, size_t len)
{
	while (len > 0) {
		ssize_t k = write(fd, buf, len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -1;
		if (k == 0) {
			errno = EIO;
			return -1;
		}
		buf += k;
		len -= (size_t)k;
	}
	return 0;
}

int donelog_append(int fd, const int64_t *ids, size_t n)
{
	unsigned char buf[CHUNK * DONELOG_REC];

	while (n > 0) {
		size_t k = n < CHUNK ? n : CHUNK;

		for (size_t i = 0; i < k; i++)
			put_rec(buf + i * DONELOG_REC, ids[i]);
		if (write_all(fd, buf, k * DONELOG_REC) != 0)
			return -1;
		ids += k;
		n -= k;
	}
	return 0;
}

int donelog_read(int fd, int64_t **ids, size_t *n, size_t *skipped)
{
	unsigned char *buf = NULL;
	int64_t *out = NULL;
	size_t len = 0, cap = 0, pos = 0, nout = 0, bad = 0;
	int e = ENOMEM;

	*ids = NULL;
	*n = *skipped = 0;
	/* Read to the end rather than trust st_size: writers may still append. */
	for (;;) {
		ssize_t k;

		if (cap - len < 65536) {
			unsigned char *b = realloc(buf, cap ? cap * 2 : 65536);

			if (b == NULL)
				goto fail;
			buf = b;
			cap = cap ? cap * 2 : 65536;
		}
		k = pread(fd, buf + len, cap - len, (off_t)len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			e = errno;
			goto fail;
		}
		if (k == 0)
			break;
		len += (size_t)k;
	}
	if (len >= DONELOG_REC && (out = malloc(len / DONELOG_REC * sizeof(*out))) == NULL)
		goto fail;
	/* After a torn record, find the next whole one byte by byte. */
	while (len - pos >= DONELOG_REC) {
		if (get_rec(buf + pos, &out[nout])) {
			nout++;
			pos += DONELOG_REC;
		} else {
			bad++;
			pos++;
		}
	}
	free(buf);
	*skipped = bad + (len - pos);
	if (nout == 0) {
		free(out);
		out = NULL;
	}
	*ids = out;
	*n = nout;
	return 0;
fail:
	free(buf);
	free(out);
	errno = e;
	return -1;
}

int donelog_truncate(int fd)
{
	while (ftruncate(fd, 0) != 0)
		if (errno != EINTR)
			return -1;
	return 0;
}
