/* Unit tests for daemon/notify.c: the datagrams systemd would receive. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"

/* A stand-in for PID 1's notification socket. */
struct sink {
	char dir[64];
	char path[128];
	int fd;
};

static int open_sink(struct sink *s, int abstract)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 2 };
	socklen_t len;
	int one = 1;

	s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		return -1;
	if (abstract) {
		/* "@name" in NOTIFY_SOCKET is "\0name" in sun_path. */
		s->dir[0] = '\0';
		snprintf(s->path, sizeof(s->path), "@tgrun-notify-test-%d",
		    (int)getpid());
		memcpy(sa.sun_path + 1, s->path + 1, strlen(s->path) - 1);
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
		    strlen(s->path));
	} else {
		snprintf(s->dir, sizeof(s->dir), "/tmp/tgrun-notify-XXXXXX");
		if (mkdtemp(s->dir) == NULL)
			return -1;
		snprintf(s->path, sizeof(s->path), "%s/notify", s->dir);
		strcpy(sa.sun_path, s->path);
		len = sizeof(sa);
	}
	if (bind(s->fd, (struct sockaddr *)&sa, len) != 0 ||
	    setsockopt(s->fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) != 0 ||
	    setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0)
		return -1;
	return 0;
}

static void close_sink(struct sink *s)
{
	close(s->fd);
	if (s->dir[0] != '\0') {
		unlink(s->path);
		rmdir(s->dir);
	}
}

/* Receive one datagram as a string; check it carries our credentials. */
static char *recv_msg(struct sink *s, char *buf, size_t size)
{
	union {
		struct cmsghdr hdr;
		char space[CMSG_SPACE(sizeof(struct ucred))];
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = size - 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = &control, .msg_controllen = sizeof(control),
	};
	struct cmsghdr *c;
	struct ucred cred;
	ssize_t n;

	n = recvmsg(s->fd, &msg, 0);
	assert_true(n >= 0);
	assert_false(msg.msg_flags & MSG_TRUNC);
	buf[n] = '\0';
	c = CMSG_FIRSTHDR(&msg);
	assert_non_null(c);
	assert_int_equal(c->cmsg_level, SOL_SOCKET);
	assert_int_equal(c->cmsg_type, SCM_CREDENTIALS);
	memcpy(&cred, CMSG_DATA(c), sizeof(cred));
	assert_int_equal(cred.pid, getpid());
	return buf;
}

static void assert_nothing_pending(struct sink *s)
{
	char buf[16];

	assert_int_equal(recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT), -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void set_watchdog_env(pid_t pid)
{
	char v[32];

	snprintf(v, sizeof(v), "%d", (int)pid);
	setenv("WATCHDOG_USEC", "2000000", 1);
	setenv("WATCHDOG_PID", v, 1);
}

static int setup(void **state)
{
	static struct sink s;

	if (open_sink(&s, 0) != 0)
		return -1;
	setenv("NOTIFY_SOCKET", s.path, 1);
	set_watchdog_env(getpid());
	*state = &s;
	return 0;
}

static int teardown(void **state)
{
	close_sink(*state);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	return 0;
}

static void test_messages_in_order(void **state)
{
	struct sink *s = *state;
	struct notify n;
	char buf[512], *p, *end;
	uint64_t before, after, mono;

	notify_init(&n);
	assert_int_equal(notify_ready(&n), 0);
	before = now_usec();
	assert_int_equal(notify_reloading(&n), 0);
	after = now_usec();
	assert_int_equal(notify_status(&n, "%d workers, %s", 4, "12 in flight"), 0);
	assert_int_equal(notify_ready(&n), 0);
	assert_int_equal(notify_stopping(&n), 0);
	assert_int_equal(notify_watchdog(&n), 0);

	assert_string_equal(recv_msg(s, buf, sizeof(buf)), "READY=1");
	p = recv_msg(s, buf, sizeof(buf));
	assert_memory_equal(p, "RELOADING=1\nMONOTONIC_USEC=", 27);
	errno = 0;
	mono = strtoull(p + 27, &end, 10);
	assert_int_equal(errno, 0);
	assert_true(end != p + 27 && *end == '\0');
	assert_true(mono >= before && mono <= after);
	assert_string_equal(recv_msg(s, buf, sizeof(buf)),
	    "STATUS=4 workers, 12 in flight");
	assert_string_equal(recv_msg(s, buf, sizeof(buf)), "READY=1");
	assert_string_equal(recv_msg(s, buf, sizeof(buf)), "STOPPING=1");
	assert_string_equal(recv_msg(s, buf, sizeof(buf)), "WATCHDOG=1");
	assert_nothing_pending(s);
}

static void test_status_newline_flattened(void **state)
{
	struct sink *s = *state;
	struct notify n;
	char buf[512];

	notify_init(&n);
	assert_int_equal(notify_status(&n, "%s", "bad\nREADY=1\n"), 0);
	assert_string_equal(recv_msg(s, buf, sizeof(buf)), "STATUS=bad READY=1 ");
	assert_nothing_pending(s);
}

static void test_watchdog_interval(void **state)
{
	struct notify n;

	notify_init(&n);
	assert_true(notify_watchdog_interval_usec(&n) == 2000000);
}

static void test_watchdog_other_pid(void **state)
{
	struct sink *s = *state;
	struct notify n;
	char buf[64];

	/* WATCHDOG_PID names another process (a parent we inherited it from). */
	set_watchdog_env(getpid() + 1);
	notify_init(&n);
	assert_true(notify_watchdog_interval_usec(&n) == 0);
	assert_int_equal(notify_watchdog(&n), 0);
	assert_int_equal(notify_ready(&n), 0);
	assert_string_equal(recv_msg(s, buf, sizeof(buf)), "READY=1");
	assert_nothing_pending(s);
}

static void test_watchdog_unset(void **state)
{
	struct sink *s = *state;
	struct notify n;

	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	notify_init(&n);
	assert_true(notify_watchdog_interval_usec(&n) == 0);
	assert_int_equal(notify_watchdog(&n), 0);
	assert_nothing_pending(s);
}

static void test_watchdog_malformed(void **state)
{
	struct notify n;

	setenv("WATCHDOG_USEC", "soon", 1);
	notify_init(&n);
	assert_true(notify_watchdog_interval_usec(&n) == 0);
}

static void test_noop_without_socket(void **state)
{
	static const char *const empty[] = { NULL, "" };
	struct sink *s = *state;
	struct notify n;

	for (size_t i = 0; i < 2; i++) {
		if (empty[i] == NULL)
			unsetenv("NOTIFY_SOCKET");
		else
			setenv("NOTIFY_SOCKET", empty[i], 1);
		notify_init(&n);
		assert_int_equal(notify_ready(&n), 0);
		assert_int_equal(notify_reloading(&n), 0);
		assert_int_equal(notify_status(&n, "x %d", 1), 0);
		assert_int_equal(notify_stopping(&n), 0);
		assert_int_equal(notify_watchdog(&n), 0);
		assert_true(notify_watchdog_interval_usec(&n) == 0);
	}
	/* Nothing reached the socket, not even through a cached address. */
	assert_nothing_pending(s);
}

static void test_send_failure(void **state)
{
	struct sink *s = *state;
	char gone[160];
	struct notify n;

	snprintf(gone, sizeof(gone), "%s/absent", s->dir);
	setenv("NOTIFY_SOCKET", gone, 1);
	notify_init(&n);
	errno = 0;
	assert_int_equal(notify_ready(&n), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(notify_status(&n, "x"), -1);
	assert_int_equal(errno, ENOENT);
}

static void test_abstract_socket(void **state)
{
	struct sink a;
	struct notify n;
	char buf[64];

	assert_int_equal(open_sink(&a, 1), 0);
	setenv("NOTIFY_SOCKET", a.path, 1);
	notify_init(&n);
	assert_int_equal(notify_ready(&n), 0);
	assert_int_equal(notify_watchdog(&n), 0);
	assert_string_equal(recv_msg(&a, buf, sizeof(buf)), "READY=1");
	assert_string_equal(recv_msg(&a, buf, sizeof(buf)), "WATCHDOG=1");
	close_sink(&a);
}

static void test_scrub_env(void **state)
{
	notify_init(&(struct notify){ 0 });
	setenv("NOTIFY_SOCKETS", "not ours", 1);
	setenv("TGRUN_KEEP", "1", 1);
	notify_scrub_env();
	assert_null(getenv("NOTIFY_SOCKET"));
	assert_null(getenv("WATCHDOG_USEC"));
	assert_null(getenv("WATCHDOG_PID"));
	assert_string_equal(getenv("NOTIFY_SOCKETS"), "not ours");
	assert_string_equal(getenv("TGRUN_KEEP"), "1");
	/* The environment still works normally afterwards. */
	setenv("NOTIFY_SOCKET", "/x", 1);
	assert_string_equal(getenv("NOTIFY_SOCKET"), "/x");
	notify_scrub_env();
	notify_scrub_env();
	assert_null(getenv("NOTIFY_SOCKET"));
	unsetenv("NOTIFY_SOCKETS");
	unsetenv("TGRUN_KEEP");
}

/* As the master uses it: in a forked child, then exec; the new image must not see them. */
static void test_scrub_env_exec(void **state)
{
	char out[8192];
	size_t len = 0;
	ssize_t r;
	int pfd[2], st;
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		notify_scrub_env();
		dup2(pfd[1], STDOUT_FILENO);
		execl("/usr/bin/env", "env", (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	while (len < sizeof(out) - 1 &&
	    (r = read(pfd[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)r;
	out[len] = '\0';
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_non_null(strstr(out, "PATH="));
	assert_null(strstr(out, "NOTIFY_SOCKET="));
	assert_null(strstr(out, "WATCHDOG_USEC="));
	assert_null(strstr(out, "WATCHDOG_PID="));
	/* The parent keeps them. */
	assert_non_null(getenv("NOTIFY_SOCKET"));
	assert_non_null(getenv("WATCHDOG_USEC"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_messages_in_order),
		T(test_status_newline_flattened),
		T(test_watchdog_interval),
		T(test_watchdog_other_pid),
		T(test_watchdog_unset),
		T(test_watchdog_malformed),
		T(test_noop_without_socket),
		T(test_send_failure),
		T(test_abstract_socket),
		T(test_scrub_env),
		T(test_scrub_env_exec),
#undef T
	};

	return cmocka_run_group_tests_name("notify", tests, NULL, NULL);
}
