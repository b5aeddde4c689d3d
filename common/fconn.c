/* A frame connection: a socket read into and written from evbuffers with as few system calls as the loop allows. */
#include "fconn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

/* Bytes asked of one read. */
#define FCONN_READ 65536

struct fconn {
	int fd;
	struct evbuffer *in, *out;
	struct event *rd;	/* persistent while reading */
	struct event *wr;	/* added only while the socket's buffer is full */
	struct event *flush;	/* made active by fconn_kick(): end of this turn */
	int wr_added, kicked, failed;
	fconn_cb cb;
	void *arg;
};

static void fail(struct fconn *c)
{
	if (c->failed)
		return;
	c->failed = 1;
	event_del(c->rd);
	event_del(c->wr);
	c->wr_added = 0;
	c->cb(c, NULL, c->arg);		/* may free c */
}

/* Write what is queued; register for writability only if some is left. */
static void write_out(struct fconn *c)
{
	while (evbuffer_get_length(c->out) > 0) {
		int n = evbuffer_write(c->out, c->fd);

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EINTR)
				continue;
			fail(c);
			return;
		}
	}
	if (evbuffer_get_length(c->out) > 0 && !c->wr_added) {
		if (event_add(c->wr, NULL) == 0)
			c->wr_added = 1;
	} else if (evbuffer_get_length(c->out) == 0 && c->wr_added) {
		event_del(c->wr);
		c->wr_added = 0;
	}
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct fconn *c = arg;

	c->kicked = 0;
	if (!c->failed)
		write_out(c);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct fconn *c = arg;

	if (!c->failed)
		write_out(c);
}

/* One read into the input's free space: no FIONREAD first. */
static ssize_t read_once(struct fconn *c)
{
	struct evbuffer_iovec v[2];
	struct iovec iov[2];
	int nv = evbuffer_reserve_space(c->in, FCONN_READ, v, 2);
	ssize_t n;

	if (nv <= 0)
		return -1;
	for (int i = 0; i < nv; i++) {
		iov[i].iov_base = v[i].iov_base;
		iov[i].iov_len = v[i].iov_len;
	}
	do
		n = readv(c->fd, iov, nv);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		evbuffer_commit_space(c->in, v, 0);
		return n;
	}
	{
		size_t left = (size_t)n;
		int used = 0;

		for (int i = 0; i < nv && left > 0; i++) {
			if (v[i].iov_len > left)
				v[i].iov_len = left;
			left -= v[i].iov_len;
			used++;
		}
		nv = used;
	}
	evbuffer_commit_space(c->in, v, nv);
	return n;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct fconn *c = arg;
	ssize_t n = read_once(c);

	if (n > 0) {
		c->cb(c, c->in, c->arg);	/* may free c */
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	fail(c);				/* EOF or an error */
}

struct fconn *fconn_new(struct event_base *base, int fd, fconn_cb cb, void *arg)
{
	struct fconn *c = calloc(1, sizeof(*c));
	int fl = fcntl(fd, F_GETFL);

	if (c == NULL)
		return NULL;
	c->fd = fd;
	c->cb = cb;
	c->arg = arg;
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	c->rd = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, c);
	c->wr = event_new(base, fd, EV_WRITE | EV_PERSIST, on_writable, c);
	c->flush = event_new(base, -1, 0, on_flush, c);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || c->in == NULL ||
	    c->out == NULL || c->rd == NULL || c->wr == NULL || c->flush == NULL ||
	    event_add(c->rd, NULL) != 0) {
		c->fd = -1;		/* the caller still owns it */
		fconn_free(c);
		return NULL;
	}
	return c;
}

void fconn_free(struct fconn *c)
{
	if (c == NULL)
		return;
	if (c->rd != NULL)
		event_free(c->rd);
	if (c->wr != NULL)
		event_free(c->wr);
	if (c->flush != NULL)
		event_free(c->flush);
	if (c->in != NULL)
		evbuffer_free(c->in);
	if (c->out != NULL)
		evbuffer_free(c->out);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

int fconn_fd(const struct fconn *c)
{
	return c->fd;
}

struct evbuffer *fconn_input(struct fconn *c)
{
	return c->in;
}

struct evbuffer *fconn_output(struct fconn *c)
{
	return c->out;
}

void fconn_kick(struct fconn *c)
{
	if (c->kicked || c->failed)
		return;
	c->kicked = 1;
	event_active(c->flush, EV_TIMEOUT, 1);
}

void fconn_stop_reading(struct fconn *c)
{
	event_del(c->rd);
}

ssize_t fconn_drain_socket(struct fconn *c)
{
	ssize_t n, total = 0;

	while ((n = read_once(c)) > 0)
		total += n;
	if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
		return total > 0 ? total : -1;
	return total;
}

void fconn_flush_blocking(struct fconn *c)
{
	int fl = fcntl(c->fd, F_GETFL);

	if (c->failed)
		return;
	if (fl >= 0)
		(void)fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
	while (evbuffer_get_length(c->out) > 0) {
		int n = evbuffer_write(c->out, c->fd);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
	}
	if (fl >= 0)
		(void)fcntl(c->fd, F_SETFL, fl);
}
