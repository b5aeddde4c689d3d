/* libcurl multi driven by a libevent loop. */
#include "evcurl.h"
#include "log.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

struct evcurl {
	struct event_base *base;
	CURLM *multi;
	CURLSH *share;		/* TLS sessions, shared by every transfer */
	struct event *timer;
	int running;
	int active;		/* transfers added and not finished */
	struct ec_sock **socks;	/* by descriptor: every socket curl opened */
	size_t nsocks;
	long h2cap;		/* evcurl_http2_cap(); 0 = none */
	int h2known;		/* a transfer told which HTTP version the server speaks */
};

/*
 * A socket curl opened, from its opening to its closing (both through our
 * callbacks). An idle keep-alive connection stays registered for reading, so
 * its next use costs no epoll_ctl.
 */
struct ec_sock {
	struct evcurl *ec;
	curl_socket_t fd;
	short kind;		/* the events registered; 0 = none */
	int wanted;		/* curl watches it now (not idle in its cache) */
	struct event ev;	/* assigned in place: no allocation per change */
};

struct ec_req {
	evcurl_done_cb cb;
	void *arg;
};

static void check_done(struct evcurl *ec)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(ec->multi, &left)) != NULL) {
		struct ec_req *rq = NULL;
		CURL *easy = msg->easy_handle;
		CURLcode res = msg->data.result;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&rq);
		if (ec->h2cap > 0 && !ec->h2known && res == CURLE_OK) {
			long v = 0;

			if (curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &v) == CURLE_OK &&
			    v != 0) {
				ec->h2known = 1;
				if (v != CURL_HTTP_VERSION_2_0) {
					curl_multi_setopt(ec->multi,
					    CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
					log_debug("HTTP/1.x: connections per host not capped");
				}
			}
		}
		curl_multi_remove_handle(ec->multi, easy);
		curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
		ec->active--;
		if (rq != NULL) {
			evcurl_done_cb cb = rq->cb;
			void *arg = rq->arg;

			free(rq);
			cb(easy, res, arg);
		}
	}
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
	struct ec_sock *sk = arg;
	struct evcurl *ec = sk->ec;
	int action = (what & EV_READ ? CURL_CSELECT_IN : 0) |
	    (what & EV_WRITE ? CURL_CSELECT_OUT : 0);

	if (!sk->wanted) {
		/*
		 * An idle connection became readable: the server closed it (or
		 * sent what it should not). curl sees that at its next use; stop
		 * watching until then.
		 */
		event_del(&sk->ev);
		sk->kind = 0;
		return;
	}
	curl_multi_socket_action(ec->multi, fd, action, &ec->running);
	check_done(ec);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct evcurl *ec = arg;

	curl_multi_socket_action(ec->multi, CURL_SOCKET_TIMEOUT, 0, &ec->running);
	check_done(ec);
}

static struct ec_sock *sock_find(struct evcurl *ec, curl_socket_t s)
{
	return s >= 0 && (size_t)s < ec->nsocks ? ec->socks[s] : NULL;
}

static void sock_forget(struct evcurl *ec, curl_socket_t s)
{
	struct ec_sock *sk = sock_find(ec, s);

	if (sk == NULL)
		return;
	if (sk->kind != 0)
		event_del(&sk->ev);
	free(sk);
	ec->socks[s] = NULL;
}

/* CURLOPT_OPENSOCKETFUNCTION: every socket curl uses starts here. */
static curl_socket_t open_cb(void *clientp, curlsocktype purpose,
    struct curl_sockaddr *a)
{
	struct evcurl *ec = clientp;
	curl_socket_t s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	struct ec_sock *sk;

	if (s < 0)
		return CURL_SOCKET_BAD;
	sock_forget(ec, s);	/* a descriptor closed behind our back */
	if ((size_t)s >= ec->nsocks) {
		size_t n = ec->nsocks ? ec->nsocks : 64;
		struct ec_sock **t;

		while (n <= (size_t)s)
			n *= 2;
		if ((t = realloc(ec->socks, n * sizeof(*t))) == NULL)
			goto fail;
		for (size_t i = ec->nsocks; i < n; i++)
			t[i] = NULL;
		ec->socks = t;
		ec->nsocks = n;
	}
	if ((sk = calloc(1, sizeof(*sk))) == NULL)
		goto fail;
	sk->ec = ec;
	sk->fd = s;
	ec->socks[s] = sk;
	return s;
fail:
	close(s);
	return CURL_SOCKET_BAD;
}

/* CURLOPT_CLOSESOCKETFUNCTION: the event goes before the descriptor. */
static int close_cb(void *clientp, curl_socket_t s)
{
	sock_forget(clientp, s);
	return close(s);
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *sockp)
{
	struct evcurl *ec = userp;
	struct ec_sock *sk = sock_find(ec, s);
	short kind;

	if (sk == NULL)
		return what == CURL_POLL_REMOVE ? 0 : -1;	/* not opened by us */
	if (what == CURL_POLL_REMOVE) {
		/* Idle in curl's cache: keep reading registered, never writing. */
		sk->wanted = 0;
		if (sk->kind & EV_WRITE) {
			event_del(&sk->ev);
			sk->kind = 0;
		}
		return 0;
	}
	sk->wanted = 1;
	kind = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
	    (what & CURL_POLL_OUT ? EV_WRITE : 0);
	if (kind == sk->kind)
		return 0;
	if (sk->kind != 0)
		event_del(&sk->ev);
	sk->kind = kind;
	if (event_assign(&sk->ev, ec->base, s, kind, on_event, sk) != 0 ||
	    event_add(&sk->ev, NULL) != 0)
		return -1;
	return 0;
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct evcurl *ec = userp;

	if (timeout_ms < 0) {
		evtimer_del(ec->timer);
	} else {
		struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };

		/* Zero means "now": let the loop run it, never recurse into curl. */
		evtimer_add(ec->timer, &tv);
	}
	return 0;
}

struct evcurl *evcurl_new(struct event_base *base, int maxconns)
{
	struct evcurl *ec = calloc(1, sizeof(*ec));

	if (ec == NULL)
		return NULL;
	ec->base = base;
	ec->multi = curl_multi_init();
	ec->share = curl_share_init();
	ec->timer = evtimer_new(base, on_timer, ec);
	if (ec->multi == NULL || ec->share == NULL || ec->timer == NULL ||
	    curl_share_setopt(ec->share, CURLSHOPT_SHARE,
	    CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
		evcurl_free(ec);
		return NULL;
	}
	curl_multi_setopt(ec->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(ec->multi, CURLMOPT_SOCKETDATA, ec);
	curl_multi_setopt(ec->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(ec->multi, CURLMOPT_TIMERDATA, ec);
	curl_multi_setopt(ec->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	/*
	 * Idle connections kept for reuse. libcurl's default follows the number
	 * of transfers added at the moment, so a burst's connections were closed
	 * as its transfers ended and opened again by the next ones.
	 */
	curl_multi_setopt(ec->multi, CURLMOPT_MAXCONNECTS, (long)(maxconns > 0 ? maxconns : 1));
	return ec;
}

void evcurl_free(struct evcurl *ec)
{
	if (ec == NULL)
		return;
	if (ec->multi != NULL)
		curl_multi_cleanup(ec->multi);
	if (ec->share != NULL)
		curl_share_cleanup(ec->share);
	if (ec->timer != NULL)
		event_free(ec->timer);
	/* Sockets of handles never added again (the cleanup closed the rest). */
	for (size_t i = 0; i < ec->nsocks; i++)
		sock_forget(ec, (curl_socket_t)i);
	free(ec->socks);
	free(ec);
}

CURLM *evcurl_multi(struct evcurl *ec)
{
	return ec->multi;
}

int evcurl_add(struct evcurl *ec, CURL *easy, evcurl_done_cb cb, void *arg)
{
	struct ec_req *rq = malloc(sizeof(*rq));
	CURLMcode mc;

	if (rq == NULL)
		return -1;
	rq->cb = cb;
	rq->arg = arg;
	curl_easy_setopt(easy, CURLOPT_PRIVATE, rq);
	/* A TLS session from any earlier handshake resumes on a new connection. */
	curl_easy_setopt(easy, CURLOPT_SHARE, ec->share);
	/* Connections keep these for life: their sockets stay known to us. */
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, open_cb);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, ec);
	curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, close_cb);
	curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, ec);
	mc = curl_multi_add_handle(ec->multi, easy);
	if (mc != CURLM_OK) {
		log_warn("curl_multi_add_handle: %s", curl_multi_strerror(mc));
		curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
		free(rq);
		return -1;
	}
	ec->active++;
	return 0;
}

void evcurl_remove(struct evcurl *ec, CURL *easy)
{
	struct ec_req *rq = NULL;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&rq);
	if (rq == NULL)
		return;		/* not running */
	curl_multi_remove_handle(ec->multi, easy);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
	free(rq);
	ec->active--;
}

void evcurl_http2_cap(struct evcurl *ec, long conns)
{
	ec->h2cap = conns;
	ec->h2known = 0;
	curl_multi_setopt(ec->multi, CURLMOPT_MAX_HOST_CONNECTIONS, conns);
}

int evcurl_running(const struct evcurl *ec)
{
	return ec->active;
}
