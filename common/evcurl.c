/* libcurl multi driven by a libevent loop. */
#include "evcurl.h"
#include "log.h"

#include <stdlib.h>

#include <event2/event.h>
#include <event2/event_struct.h>

struct evcurl {
	struct event_base *base;
	CURLM *multi;
	CURLSH *share;		/* TLS sessions, shared by every transfer */
	struct event *timer;
	int running;
	int active;		/* transfers added and not finished */
};

struct ec_sock {
	struct evcurl *ec;
	curl_socket_t fd;
	short kind;		/* the events asked for; 0 before the first */
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
	struct evcurl *ec = arg;
	int action = (what & EV_READ ? CURL_CSELECT_IN : 0) |
	    (what & EV_WRITE ? CURL_CSELECT_OUT : 0);

	curl_multi_socket_action(ec->multi, fd, action, &ec->running);
	check_done(ec);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct evcurl *ec = arg;

	curl_multi_socket_action(ec->multi, CURL_SOCKET_TIMEOUT, 0, &ec->running);
	check_done(ec);
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *sockp)
{
	struct evcurl *ec = userp;
	struct ec_sock *sk = sockp;
	short kind;

	if (what == CURL_POLL_REMOVE) {
		if (sk != NULL) {
			if (sk->kind != 0)
				event_del(&sk->ev);
			free(sk);
			curl_multi_assign(ec->multi, s, NULL);
		}
		return 0;
	}
	if (sk == NULL) {
		sk = calloc(1, sizeof(*sk));
		if (sk == NULL)
			return -1;
		sk->ec = ec;
		sk->fd = s;
		curl_multi_assign(ec->multi, s, sk);
	}
	kind = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
	    (what & CURL_POLL_OUT ? EV_WRITE : 0);
	if (kind == sk->kind)
		return 0;
	if (sk->kind != 0)
		event_del(&sk->ev);
	sk->kind = kind;
	if (event_assign(&sk->ev, ec->base, s, kind, on_event, ec) != 0 ||
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

int evcurl_running(const struct evcurl *ec)
{
	return ec->active;
}
