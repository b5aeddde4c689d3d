/* Unit tests for the Bot API request layer: which failed attempts may be sent again, against a real socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "botapi.h"
#include "loopback.h"

#define TOKEN "123456789:AAH-test_TOKEN-do-not-log-0123456789"

/*
 * A one-shot HTTP server on 127.0.0.1: it reads the request, then writes
 * `answer` (NULL: closes without a byte, as a server that dies after taking
 * the request).
 */
struct oneshot {
	int lfd, port;
	const char *answer;
	pid_t pid;
};

/* In a child process, bounded by alarm(). */
static void oneshot_run(struct oneshot *o)
{
	char buf[8192];
	size_t got = 0;
	int fd;

	alarm(10);
	if ((fd = accept(o->lfd, NULL, NULL)) < 0)
		_exit(1);
	/* Up to the end of the body: the request is small JSON, its length in the headers. */
	while (got < sizeof(buf) - 1) {
		ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
		char *hdr_end, *cl;

		if (n <= 0)
			break;
		got += (size_t)n;
		buf[got] = '\0';
		if ((hdr_end = strstr(buf, "\r\n\r\n")) != NULL &&
		    (cl = strcasestr(buf, "Content-Length:")) != NULL &&
		    got >= (size_t)(hdr_end + 4 - buf) + strtoul(cl + 15, NULL, 10))
			break;
	}
	if (o->answer != NULL && write(fd, o->answer, strlen(o->answer)) < 0)
		_exit(1);
	close(fd);
	_exit(0);
}

static void oneshot_start(struct oneshot *o, const char *answer)
{
	o->answer = answer;
	o->lfd = loopback_listen(&o->port);
	o->pid = fork();
	assert_true(o->pid >= 0);
	if (o->pid == 0)
		oneshot_run(o);
}

static void oneshot_stop(struct oneshot *o)
{
	int st;

	close(o->lfd);
	assert_int_equal(waitpid(o->pid, &st, 0), o->pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* One sendMessage to 127.0.0.1:port: fills *cc, *decoded and res; returns the easy handle's verdict. */
static int attempt(int port, const char *method, CURLcode *cc, int *decoded,
    struct botapi_result *res)
{
	struct botapi_req r;
	struct botapi_net net = { .token = TOKEN, .http = BOTAPI_HTTP_AUTO };
	char url[64];
	json_t *body = json_pack("{s:i, s:s}", "chat_id", 1, "text", "hi");
	int verdict;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	net.api_url = url;
	assert_int_equal(botapi_req_init(&r), 0);
	assert_int_equal(botapi_req_prepare(&r, &net, BOTAPI_CALL, method, body, 5000), 0);
	*cc = curl_easy_perform(r.easy);
	*decoded = botapi_decode(&r, *cc, res);
	verdict = botapi_not_delivered(r.easy, *cc, *decoded, res);
	botapi_req_free(&r);
	json_decref(body);
	return verdict;
}

static void test_refused_connection_was_not_delivered(void **state)
{
	struct botapi_result res;
	CURLcode cc;
	int decoded, port;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);

	/* A port that was free a moment ago and has no listener now. */
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	assert_int_equal(attempt(port, "sendMessage", &cc, &decoded, &res), 1);
	assert_int_equal(cc, CURLE_COULDNT_CONNECT);
	botapi_result_clear(&res);
}

static void test_lost_after_request_may_have_run(void **state)
{
	struct oneshot o;
	struct botapi_result res;
	CURLcode cc;
	int decoded;

	oneshot_start(&o, NULL);
	assert_int_equal(attempt(o.port, "sendMessage", &cc, &decoded, &res), 0);
	oneshot_stop(&o);
	assert_int_equal(cc, CURLE_GOT_NOTHING);
	assert_int_equal(decoded, -1);
	botapi_result_clear(&res);
}

static const struct {
	const char *name, *status, *ctype, *body;
	int decoded, not_delivered;
} answers[] = {
	{ "429 from the Bot API", "429 Too Many Requests", "application/json",
	    "{\"ok\":false,\"error_code\":429,\"description\":\"Too Many Requests: "
	    "retry after 1\",\"parameters\":{\"retry_after\":1}}", 0, 1 },
	{ "500 from the Bot API", "500 Internal Server Error", "application/json",
	    "{\"ok\":false,\"error_code\":500,\"description\":\"Internal Server Error\"}",
	    0, 0 },
	{ "502 page from a proxy", "502 Bad Gateway", "text/html",
	    "<h1>Bad Gateway</h1>", -1, 1 },
	{ "503 page from a proxy", "503 Service Unavailable", "text/html", "", -1, 1 },
	{ "504 page from a proxy", "504 Gateway Timeout", "text/html", "", -1, 1 },
	{ "500 page that is not a Bot API answer", "500 Oops", "text/html", "", -1, 0 },
	{ "200 with a body that is not JSON", "200 OK", "text/plain", "hello", -1, 0 },
	{ "400 from the Bot API (an answer: nothing ran)", "400 Bad Request",
	    "application/json", "{\"ok\":false,\"error_code\":400,"
	    "\"description\":\"Bad Request: chat not found\"}", 0, 0 },
};

static void test_answers(void **state)
{
	for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
		struct oneshot o;
		struct botapi_result res;
		char http[1024];
		CURLcode cc;
		int decoded, v;

		snprintf(http, sizeof(http), "HTTP/1.1 %s\r\nContent-Type: %s\r\n"
		    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", answers[i].status,
		    answers[i].ctype, strlen(answers[i].body), answers[i].body);
		oneshot_start(&o, http);
		v = attempt(o.port, "sendMessage", &cc, &decoded, &res);
		oneshot_stop(&o);
		if (cc != CURLE_OK || decoded != answers[i].decoded ||
		    v != answers[i].not_delivered)
			fail_msg("%s: curl %d, decoded %d, not delivered %d (%s)",
			    answers[i].name, cc, decoded, v, res.description);
		botapi_result_clear(&res);
	}
}

static void test_readonly_methods(void **state)
{
	assert_true(botapi_method_readonly("getMe"));
	assert_true(botapi_method_readonly("getUpdates"));
	assert_true(botapi_method_readonly("getFile"));
	assert_false(botapi_method_readonly("sendMessage"));
	assert_false(botapi_method_readonly("get"));
	assert_false(botapi_method_readonly("getaway"));
	assert_false(botapi_method_readonly("setMyCommands"));
	assert_false(botapi_method_readonly("answerCallbackQuery"));
}

static void test_tls_trust_errors(void **state)
{
	assert_true(botapi_tls_trust_error(CURLE_PEER_FAILED_VERIFICATION));
	assert_true(botapi_tls_trust_error(CURLE_SSL_CACERT_BADFILE));
	assert_false(botapi_tls_trust_error(CURLE_COULDNT_CONNECT));
	assert_false(botapi_tls_trust_error(CURLE_OK));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refused_connection_was_not_delivered),
		cmocka_unit_test(test_lost_after_request_may_have_run),
		cmocka_unit_test(test_answers),
		cmocka_unit_test(test_readonly_methods),
		cmocka_unit_test(test_tls_trust_errors),
	};

	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
