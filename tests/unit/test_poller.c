/*
 * Unit tests for the poller's last check before a getUpdates goes out
 * (poller_cbs.may_send), against a real loopback socket: a refused request
 * is never written, and the poller goes idle.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include <event2/event.h>

#include "botapi.h"
#include "clock.h"
#include "config.h"
#include "evcurl.h"
#include "loopback.h"
#include "poller.h"

#define TOKEN "123456789:AAH-test_TOKEN-do-not-log-0123456789"
#define EMPTY_ANSWER "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" \
	"Content-Length: 23\r\n\r\n{\"ok\":true,\"result\":[]}"

/*
 * A one-connection HTTP server on 127.0.0.1 in a child process (bounded by
 * alarm()): it reads what arrives within a second and a half, answers an
 * empty batch if a whole request came, and reports the bytes it read
 * through a pipe.
 */
struct server {
	int lfd, port, report;
	pid_t pid;
};

static void server_run(int lfd, int report)
{
	char buf[8192];
	size_t got = 0;
	int64_t end;
	int fd;

	alarm(10);
	if ((fd = accept(lfd, NULL, NULL)) < 0)
		_exit(1);
	end = clock_ms() + 1500;
	while (got < sizeof(buf) - 1 && clock_ms() < end) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		ssize_t n;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		n = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		buf[got] = '\0';
		if (strstr(buf, "\r\n\r\n") != NULL && strstr(buf, "\"offset\"") != NULL) {
			if (write(fd, EMPTY_ANSWER, strlen(EMPTY_ANSWER)) < 0)
				_exit(1);
			break;
		}
	}
	if (write(report, &got, sizeof(got)) != sizeof(got))
		_exit(1);
	close(fd);
	_exit(0);
}

static void server_start(struct server *s)
{
	int p[2];

	s->lfd = loopback_listen(&s->port);
	assert_int_equal(pipe(p), 0);
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (s->pid == 0) {
		close(p[0]);
		server_run(s->lfd, p[1]);
	}
	close(p[1]);
	s->report = p[0];
}

/* The bytes of request the server read; waits for it to end. */
static size_t server_stop(struct server *s)
{
	size_t got = (size_t)-1;
	int st;

	assert_int_equal(read(s->report, &got, sizeof(got)), sizeof(got));
	close(s->report);
	close(s->lfd);
	assert_int_equal(waitpid(s->pid, &st, 0), s->pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	return got;
}

struct seen {
	int allow;		/* what may_send answers */
	int asked;		/* may_send calls */
	int batches;		/* on_batch calls */
};

static void on_batch(void *arg, const struct poller_item *items, size_t n)
{
	((struct seen *)arg)->batches++;
}

static void on_rejected(void *arg, int code, const char *desc)
{
	fail_msg("token rejected: %d %s", code, desc);
}

static void on_skip(void *arg, int64_t id)
{
	fail_msg("update %lld skipped", (long long)id);
}

static void on_confirmed(void *arg, int ok)
{
}

static int may_send(void *arg)
{
	struct seen *s = arg;

	s->asked++;
	return s->allow;
}

/* One getUpdates through a poller whose may_send answers `allow`; the bytes the server read. */
static size_t poll_once(int allow, struct seen *seen)
{
	struct poller_cbs cbs = { on_batch, on_rejected, on_skip, on_confirmed, seen, NULL,
	    NULL, may_send };
	struct event_base *base = event_base_new();
	struct evcurl *ec = evcurl_new(base, 4);
	struct config cfg;
	struct server srv;
	struct poller *p;
	char url[64];
	int64_t end;

	assert_non_null(base);
	assert_non_null(ec);
	memset(seen, 0, sizeof(*seen));
	seen->allow = allow;
	server_start(&srv);
	memset(&cfg, 0, sizeof(cfg));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", srv.port);
	cfg.api_url = url;
	cfg.api_http_version = BOTAPI_HTTP_AUTO;
	p = poller_new(base, ec, &cfg, TOKEN, &cbs);
	assert_non_null(p);
	poller_poll(p, 5, 10);
	assert_true(poller_busy(p));
	end = clock_ms() + 5000;
	while (poller_busy(p) && clock_ms() < end) {
		struct timeval tv = { 0, 10000 };

		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	assert_false(poller_busy(p));
	poller_free(p);
	evcurl_free(ec);
	event_base_free(base);
	return server_stop(&srv);
}

static void test_refused_request_is_not_written(void **state)
{
	struct seen seen;

	assert_int_equal(poll_once(0, &seen), 0);
	assert_int_equal(seen.asked, 1);
	assert_int_equal(seen.batches, 0);
}

static void test_allowed_request_goes_out(void **state)
{
	struct seen seen;

	assert_true(poll_once(1, &seen) > 0);
	assert_int_equal(seen.asked, 1);
	assert_int_equal(seen.batches, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refused_request_is_not_written),
		cmocka_unit_test(test_allowed_request_goes_out),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
