/*
 * fdwait.c - wait on a file descriptor with tgrun_wait_fd.
 *
 * tgrun_wait_fd is how a fiber uses any non-blocking client (a database, a
 * socket, a pipe): start the operation, wait until the fd is ready, go on.
 * Other fibers run meanwhile. Here the fd is the read end of a pipe; a
 * tgrun_every job started in tgrun_init writes one byte into it every
 * 0.3 s. A text "/tick" waits (at most 5 s) for the next byte and answers
 * "tick <n> after <ms> ms". A text "/tick 0.01" uses a 0.01 s timeout instead
 * and usually answers "no tick within 0.01 s".
 *
 * Build:  cc -shared -fPIC -Wl,-z,noexecstack $(pkg-config --cflags tgrun) \
 *             -o fdwait.so fdwait.c
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <tgrun.h>

TGRUN_HANDLER;

static int pipefd[2] = { -1, -1 };	/* per worker process */

static int writer(struct tgrun_ctx *ctx, void *arg)
{
	static unsigned char n;

	n++;
	/* The pipe is non-blocking: a full pipe drops the tick, it never blocks. */
	if (write(pipefd[1], &n, 1) < 0 && errno != EAGAIN)
		return -1;
	return 0;
}

int tgrun_init(struct tgrun_bot *bot)
{
	if (pipe2(pipefd, O_NONBLOCK | O_CLOEXEC) != 0) {
		tgrun_log(bot, 3, "fdwait: pipe2: %s", strerror(errno));
		return -1;
	}
	return tgrun_every(bot, 0.3, writer, NULL);
}

void tgrun_fini(struct tgrun_bot *bot)
{
	close(pipefd[0]);
	close(pipefd[1]);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tgrun_handle(struct tgrun_ctx *ctx, const json_t *update)
{
	const char *text = json_string_value(json_object_get(
	    json_object_get(update, "message"), "text"));
	double timeout = 5, left;
	unsigned char byte;
	char reply[128];
	long long t0 = now_ms();
	int ready;
	json_t *r;

	if (text == NULL || strncmp(text, "/tick", 5) != 0)
		return 0;
	if (text[5] == ' ')
		timeout = atof(text + 6);
	for (;;) {
		/* Several fibers may wait on the pipe: whoever reads first wins. */
		if (read(pipefd[0], &byte, 1) == 1) {
			snprintf(reply, sizeof(reply), "tick %u after %lld ms",
			    byte, now_ms() - t0);
			break;
		}
		if (errno != EAGAIN)
			return -1;
		/* A negative timeout would mean "no limit": stop at 0 instead. */
		left = timeout - (now_ms() - t0) / 1000.0;
		ready = left > 0 ? tgrun_wait_fd(ctx, pipefd[0], TGRUN_READ, left) : 0;
		if (ready < 0)
			return -1;	/* cancelled (errno ECANCELED) */
		if (ready == 0) {
			snprintf(reply, sizeof(reply), "no tick within %g s", timeout);
			break;
		}
	}
	r = tgrun_reply(ctx, update, reply, NULL);
	json_decref(r);
	return r ? 0 : -1;
}
