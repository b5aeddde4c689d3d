/* Serving GET /metrics: HTTP/1.x, one request per connection, bounded in number, size and time. */
#include "metrics_http.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

/* A request's line and headers; a body is never read. */
#define MAX_HEAD 8192
/* Time a client gets to send its request, and to take the reply. */
#define IO_TIMEOUT_S 10

struct conn {
	struct metrics_http *h;
	struct bufferevent *bev;
	int replied;		/* free once the reply is written */
	LIST_ENTRY(conn) entry;
};

struct metrics_http {
	struct event_base *base;
	struct metrics *mt;
	struct listener *listener;
	LIST_HEAD(, conn) conns;
};

static int listen_tcp(const char *addr, char *err, size_t errlen);
static void say_bound(int fd);
static void on_accept(void *arg, evutil_socket_t fd);
static void conn_free(struct conn *c);
static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);
static void respond(struct conn *c, char *line);
static void reply(struct conn *c, int code, const char *reason, struct evbuffer *body,
    int head_only);

struct metrics_http *metrics_http_new(struct event_base *base, struct metrics *mt,
    const char *listen, char *err, size_t errlen)
{
	struct metrics_http *h = calloc(1, sizeof(*h));
	int fd;

	if (h == NULL) {
		snprintf(err, errlen, "metrics: out of memory");
		return NULL;
	}
	h->base = base;
	h->mt = mt;
	LIST_INIT(&h->conns);
	if ((fd = listen_tcp(listen, err, errlen)) == -1) {
		free(h);
		return NULL;
	}
	h->listener = listener_new(base, fd, "metrics", METRICS_HTTP_MAX_CONNS,
	    on_accept, h);
	if (h->listener == NULL) {
		snprintf(err, errlen, "metrics: out of memory");
		close(fd);
		free(h);
		return NULL;
	}
	say_bound(fd);
	return h;
}

void metrics_http_free(struct metrics_http *h)
{
	if (h == NULL)
		return;
	while (!LIST_EMPTY(&h->conns))
		conn_free(LIST_FIRST(&h->conns));
	listener_free(h->listener);
	free(h);
}

/* A listening socket for "HOST:PORT" or "[V6]:PORT"; -1 with `err` set. */
static int listen_tcp(const char *addr, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL, *ai;
	char host[64];
	const char *colon, *h = addr;
	size_t hn;
	int fd = -1, on = 1, r, saved = 0;

	if (*addr == '[') {
		colon = strchr(addr, ']') + 1;
		h = addr + 1;
		hn = (size_t)(colon - 1 - h);
	} else {
		colon = strrchr(addr, ':');
		hn = (size_t)(colon - addr);
	}
	snprintf(host, sizeof(host), "%.*s", (int)hn, h);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((r = getaddrinfo(host, colon + 1, &hints, &res)) != 0) {
		snprintf(err, errlen, "metrics: cannot listen on %s (getaddrinfo: %s)",
		    addr, gai_strerror(r));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd == -1) {
			saved = errno;
			continue;
		}
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == 0 &&
		    bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1)
		snprintf(err, errlen, "metrics: cannot listen on %s (%s)", addr,
		    strerror(saved));
	return fd;
}

/* Log the address bound; warn when it is not loopback: metrics have no password. */
static void say_bound(int fd)
{
	static const unsigned char v4mapped[12] = { [10] = 0xff, [11] = 0xff };
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char addr[INET6_ADDRSTRLEN], where[INET6_ADDRSTRLEN + 16];
	int loopback;

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
		log_warn("metrics: getsockname: %s", strerror(errno));
		return;
	}
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		const unsigned char *b = s6->sin6_addr.s6_addr;

		inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof(addr));
		snprintf(where, sizeof(where), "[%s]:%d", addr, ntohs(s6->sin6_port));
		loopback = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr) ||
		    (memcmp(b, v4mapped, sizeof(v4mapped)) == 0 && b[12] == 127);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof(addr));
		snprintf(where, sizeof(where), "%s:%d", addr, ntohs(s4->sin_port));
		loopback = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	log_notice("metrics: listening on %s", where);
	if (!loopback)
		log_warn("metrics: %s is not a loopback address: whoever can reach it "
		    "reads the metrics, which have no authentication; use "
		    "[metrics] listen = 127.0.0.1:PORT unless that is intended", where);
}

static void on_accept(void *arg, evutil_socket_t fd)
{
	struct metrics_http *h = arg;
	struct timeval tv = { IO_TIMEOUT_S, 0 };
	struct conn *c = calloc(1, sizeof(*c));

	if (c == NULL ||
	    (c->bev = bufferevent_socket_new(h->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		log_warn("metrics: out of memory for a connection");
		free(c);
		close(fd);
		return;
	}
	c->h = h;
	LIST_INSERT_HEAD(&h->conns, c, entry);
	listener_opened(h->listener);
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	/* One byte past the limit tells a request that is too long. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, MAX_HEAD + 1);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ);
}

static void conn_free(struct conn *c)
{
	LIST_REMOVE(c, entry);
	bufferevent_free(c->bev);
	listener_closed(c->h->listener);
	free(c);
}

/* Wait for the whole head (request line and headers), then answer its first line. */
static void on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr end;
	size_t len;
	char *line;

	if (c->replied)
		return;
	end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (end.pos == -1)
		end = evbuffer_search(in, "\n\n", 2, NULL);
	if (end.pos == -1 || end.pos > MAX_HEAD) {
		if (evbuffer_get_length(in) > MAX_HEAD)
			reply(c, 431, "Request Header Fields Too Large", NULL, 0);
		return;
	}
	if ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) == NULL) {
		reply(c, 500, "Internal Server Error", NULL, 0);
		return;
	}
	respond(c, line);
	free(line);
}

static void respond(struct conn *c, char *line)
{
	char *target, *version;
	struct evbuffer *body;
	int head;

	if ((target = strchr(line, ' ')) == NULL ||
	    (version = strchr(target + 1, ' ')) == NULL) {
		reply(c, 400, "Bad Request", NULL, 0);
		return;
	}
	*target++ = '\0';
	*version++ = '\0';
	if (strncmp(version, "HTTP/1.", 7) != 0 || version[7] < '0' || version[7] > '9' ||
	    version[8] != '\0') {
		reply(c, 400, "Bad Request", NULL, 0);
		return;
	}
	head = strcmp(line, "HEAD") == 0;
	if (!head && strcmp(line, "GET") != 0) {
		reply(c, 405, "Method Not Allowed", NULL, 0);
		return;
	}
	if (strcmp(target, "/metrics") != 0 && strncmp(target, "/metrics?", 9) != 0) {
		reply(c, 404, "Not Found", NULL, head);
		return;
	}
	if ((body = evbuffer_new()) == NULL) {
		reply(c, 500, "Internal Server Error", NULL, head);
		return;
	}
	metrics_render(c->h->mt, body);
	reply(c, 200, "OK", body, head);
	evbuffer_free(body);
}

/*
 * The one reply of this connection. Without a body, an error says its
 * reason and where the metrics are.
 */
static void reply(struct conn *c, int code, const char *reason, struct evbuffer *body,
    int head_only)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char text[128];
	size_t len;

	if (body == NULL) {
		len = (size_t)snprintf(text, sizeof(text), "%d %s: try GET /metrics\n",
		    code, reason);
	} else {
		len = evbuffer_get_length(body);
	}
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\n%sConnection: close\r\n\r\n", code, reason,
	    body ? "text/plain; version=0.0.4; charset=utf-8" :
	    "text/plain; charset=utf-8", len,
	    code == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (!head_only && body != NULL)
		evbuffer_add_buffer(out, body);
	else if (!head_only)
		evbuffer_add(out, text, len);
	c->replied = 1;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_enable(c->bev, EV_WRITE);
}

/* The output drained: the reply is written, and the connection is done. */
static void on_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->replied && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_free(c);
}

/* End of file or an error before the reply was written, or a timeout. */
static void on_event(struct bufferevent *bev, short what, void *arg)
{
	conn_free(arg);
}
