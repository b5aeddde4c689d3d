/*
 * rt_cmds.c - test handler for the worker runtime (tests/integration/test_runtime.py).
 *
 * The message text is a command; the handler reports what it observed with
 * one sendMessage "u<update_id> <words>" (the fake server counts it as the
 * update's echo). Helper fibers send "k<update_id> <words>" when they get
 * to run their Bot API call. Unknown texts are echoed as "u<update_id> ok".
 *
 *   all settled | all failfast          tgrun_all with mixed slots
 *   cancel <what> | timeout <what>      <what> (call, sleep, fd, lock) blocked
 *                                       in a fail-fast group / a timed-out one
 *   waiter n | waiter early | waiter timeout | waiter toomany
 *   lock hold <key> <secs> | lock wait <key> <timeout>
 *   api <method> [empty]                call a method, report the error
 *   all detached                        tgrun_all in a detached fiber
 *   outside                             blocking calls from a libevent callback
 *   sleep <secs>                        sleep, then report
 *   #overflow                           overflow the fiber's stack
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <tgrun.h>

TGRUN_HANDLER;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* sendMessage "<prefix><update_id> <fmt...>" to the update's chat. */
static int say(struct tgrun_ctx *ctx, char prefix, const char *fmt, ...)
{
	char text[1024];
	int n;
	va_list ap;
	json_t *res;

	n = snprintf(text, sizeof(text), "%c%lld ", prefix,
	    (long long)tgrun_update_id(ctx));
	va_start(ap, fmt);
	vsnprintf(text + n, sizeof(text) - (size_t)n, fmt, ap);
	va_end(ap);
	res = tgrun_send_text(ctx, tgrun_chat_id(ctx), text, NULL);
	json_decref(res);
	return res ? 0 : -1;
}

static void statuses(char *buf, size_t len, const struct tgrun_result *r, size_t n)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%d:%d", i ? "," : "",
		    (int)r[i].status, r[i].ret);
}

/* ---- tgrun_all ---------------------------------------------------------------- */

struct slot {
	int order;		/* completion order, 1-based */
	int *counter;
	double sleep;
	int ret;
};

static int finish(struct slot *s, int ret)
{
	s->order = ++*s->counter;
	return ret;
}

static int slow_send(struct tgrun_ctx *ctx, void *arg)
{
	struct slot *s = arg;

	if (tgrun_sleep(ctx, s->sleep) != 0)
		return finish(s, -2);
	return finish(s, say(ctx, 'k', "slow") == 0 ? 0 : -3);
}

static int get_me(struct tgrun_ctx *ctx, void *arg)
{
	json_t *me = tgrun_call(ctx, "getMe", NULL, NULL);
	int ok = json_is_string(json_object_get(me, "username"));

	json_decref(me);
	return finish(arg, ok ? 0 : -1);
}

static int chat_action(struct tgrun_ctx *ctx, void *arg)
{
	json_t *r = tgrun_call(ctx, "sendChatAction", json_pack("{s:I, s:s}",
	    "chat_id", (json_int_t)tgrun_chat_id(ctx), "action", "typing"), NULL);

	json_decref(r);
	return finish(arg, r ? 0 : -1);
}

/* A Bot API 400 (empty text): fails with the error code. */
static int bad_request(struct tgrun_ctx *ctx, void *arg)
{
	struct tgrun_error err;
	json_t *r = tgrun_send_text(ctx, tgrun_chat_id(ctx), "", &err);

	json_decref(r);
	return finish(arg, r ? 0 : err.error_code);
}

static int sleep_fail(struct tgrun_ctx *ctx, void *arg)
{
	struct slot *s = arg;

	if (tgrun_sleep(ctx, s->sleep) != 0)
		return finish(s, -2);
	return finish(s, s->ret);
}

static int cmd_all(struct tgrun_ctx *ctx, int fail_fast)
{
	int counter = 0;
	struct slot s[4] = {
		{ 0, &counter, 0.5, 0 }, { 0, &counter, 0, 0 },
		{ 0, &counter, 0.1, 9 }, { 0, &counter, 0, 0 },
	};
	tgrun_fn settled[4] = { slow_send, get_me, bad_request, chat_action };
	tgrun_fn failfast[4] = { slow_send, get_me, sleep_fail, chat_action };
	void *args[4] = { &s[0], &s[1], &s[2], &s[3] };
	struct tgrun_result r[4];
	char st[128];
	long long t0 = now_ms();
	int rc;

	rc = tgrun_all(ctx, 4, fail_fast ? failfast : settled, args, r,
	    fail_fast ? TGRUN_ALL_FAIL_FAST : TGRUN_ALL_SETTLED, 10);
	statuses(st, sizeof(st), r, 4);
	return say(ctx, 'u', "all rc=%d st=%s order=%d,%d,%d,%d ms=%lld", rc, st,
	    s[0].order, s[1].order, s[2].order, s[3].order, now_ms() - t0);
}

/* tgrun_all in a fiber without an update (detached, or a tgrun_every job). */
struct bg {
	int64_t chat, uid;
};

static int quick(struct tgrun_ctx *ctx, void *arg)
{
	return tgrun_sleep(ctx, 0.05 * (double)(intptr_t)arg) == 0 ? (int)(intptr_t)arg : -1;
}

static int bg_all(struct tgrun_ctx *ctx, void *arg)
{
	struct bg *b = arg;
	tgrun_fn fns[3] = { quick, quick, quick };
	void *args[3] = { (void *)(intptr_t)0, (void *)(intptr_t)2, (void *)(intptr_t)1 };
	struct tgrun_result r[3];
	char st[64], text[128];
	int rc = tgrun_all(ctx, 3, fns, args, r, TGRUN_ALL_SETTLED, 5);
	json_t *res;

	statuses(st, sizeof(st), r, 3);
	snprintf(text, sizeof(text), "u%lld bgall rc=%d st=%s", (long long)b->uid, rc, st);
	res = tgrun_send_text(ctx, b->chat, text, NULL);
	json_decref(res);
	free(b);
	return res ? 0 : -1;
}

static int cmd_bgall(struct tgrun_ctx *ctx)
{
	struct bg *b = malloc(sizeof(*b));

	if (b == NULL)
		return -1;
	b->chat = tgrun_chat_id(ctx);
	b->uid = tgrun_update_id(ctx);
	if (tgrun_spawn(ctx, bg_all, b, TGRUN_DETACHED) == NULL) {
		free(b);
		return -1;
	}
	return 0;
}

/* ---- cancellation of blocked fibers ------------------------------------------- */

struct blocked {
	const char *what;
	char key[64];
	int fd;
	int rc, err_no, kind;	/* what the blocking call returned */
	int after_kind;		/* a Bot API call made after the cancel */
	long long ms;
};

static int blocker(struct tgrun_ctx *ctx, void *arg)
{
	struct blocked *b = arg;
	struct tgrun_error err = { 0 };
	long long t0 = now_ms();
	json_t *r;

	errno = 0;
	if (strcmp(b->what, "call") == 0) {
		r = tgrun_call(ctx, "sendChatAction", json_pack("{s:I, s:s}", "chat_id",
		    (json_int_t)tgrun_chat_id(ctx), "action", "typing"), &err);
		b->rc = r ? 0 : -1;
		b->kind = err.kind;
		json_decref(r);
	} else if (strcmp(b->what, "sleep") == 0) {
		b->rc = tgrun_sleep(ctx, 30);
	} else if (strcmp(b->what, "fd") == 0) {
		b->rc = tgrun_wait_fd(ctx, b->fd, TGRUN_READ, 30);
	} else if (strcmp(b->what, "lock") == 0) {
		b->rc = tgrun_lock(ctx, b->key, 30);
	} else {
		b->rc = -99;
	}
	b->err_no = errno;
	b->ms = now_ms() - t0;
	/* Cancelled: this must not reach the Bot API. */
	r = tgrun_send_text(ctx, tgrun_chat_id(ctx), "late", &err);
	b->after_kind = r ? 0 : err.kind;
	if (r != NULL) {
		json_decref(r);
		return 0;
	}
	return -1;
}

static int cmd_cancel(struct tgrun_ctx *ctx, const char *what, int timeout)
{
	struct blocked b = { .what = what, .fd = -1 };
	struct slot fail = { 0, NULL, 0.3, 5 };
	int counter = 0, pipefd[2] = { -1, -1 }, rc;
	tgrun_fn fns[2] = { blocker, sleep_fail };
	void *args[2] = { &b, &fail };
	struct tgrun_result r[2];
	char st[64];
	long long t0 = now_ms();

	fail.counter = &counter;
	snprintf(b.key, sizeof(b.key), "cancel-%lld", (long long)tgrun_update_id(ctx));
	if (strcmp(what, "fd") == 0) {
		if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) != 0)
			return -1;
		b.fd = pipefd[0];
	}
	if (strcmp(what, "lock") == 0 && tgrun_lock(ctx, b.key, 1) != 0)
		return -1;
	if (timeout)
		rc = tgrun_all(ctx, 1, fns, args, r, TGRUN_ALL_SETTLED, 0.3);
	else
		rc = tgrun_all(ctx, 2, fns, args, r, TGRUN_ALL_FAIL_FAST, 20);
	if (strcmp(what, "lock") == 0)
		(void)tgrun_unlock(ctx, b.key);
	if (pipefd[0] >= 0) {
		close(pipefd[0]);
		close(pipefd[1]);
	}
	statuses(st, sizeof(st), r, timeout ? 1 : 2);
	return say(ctx, 'u', "cancel %s rc=%d st=%s brc=%d errno=%d kind=%d after=%d "
	    "bms=%lld ms=%lld", what, rc, st, b.rc, b.err_no, b.kind, b.after_kind,
	    b.ms, now_ms() - t0);
}

/* ---- waiters --------------------------------------------------------------------- */

struct wjob {
	struct tgrun_waiter *w;
	double delay;
};

static int wjob(struct tgrun_ctx *ctx, void *arg)
{
	struct wjob *j = arg;

	if (tgrun_sleep(ctx, j->delay) != 0)
		return -1;
	return tgrun_waiter_done(j->w);
}

/* A libevent callback: done() from outside any fiber only queues the wake-up. */
static void done_from_callback(evutil_socket_t fd, short what, void *arg)
{
	(void)tgrun_waiter_done(arg);
}

static int cmd_waiter(struct tgrun_ctx *ctx, const char *how)
{
	struct tgrun_waiter *w;
	struct wjob jobs[3];
	long long t0 = now_ms();
	int rc, e, rc2 = 0, e2 = 0;

	if (strcmp(how, "n") == 0) {
		struct timeval tv = { 0, 200 * 1000 };

		w = tgrun_waiter_new(ctx, 4);
		for (int i = 0; i < 3; i++) {
			jobs[i].w = w;
			jobs[i].delay = 0.1 * (i + 1);
			if (tgrun_spawn(ctx, wjob, &jobs[i], 0) == NULL)
				return -1;
		}
		if (event_base_once(tgrun_event_base(tgrun_bot(ctx)), -1, EV_TIMEOUT,
		    done_from_callback, w, &tv) != 0)
			return -1;
		errno = 0;
		rc = tgrun_waiter_wait(w, 10);
	} else if (strcmp(how, "early") == 0) {
		w = tgrun_waiter_new(ctx, 2);
		rc2 = tgrun_waiter_done(w) + tgrun_waiter_done(w);
		errno = 0;
		rc = tgrun_waiter_wait(w, 0);
	} else if (strcmp(how, "timeout") == 0) {
		w = tgrun_waiter_new(ctx, 2);
		rc2 = tgrun_waiter_done(w);
		errno = 0;
		rc = tgrun_waiter_wait(w, 0.3);
	} else if (strcmp(how, "toomany") == 0) {
		w = tgrun_waiter_new(ctx, 1);
		rc = tgrun_waiter_done(w);
		errno = 0;
		rc2 = tgrun_waiter_done(w);
		e2 = errno;
	} else {
		return say(ctx, 'u', "waiter: unknown %s", how);
	}
	e = errno;
	tgrun_waiter_free(w);
	return say(ctx, 'u', "waiter %s rc=%d errno=%d rc2=%d errno2=%d ms=%lld", how,
	    rc, e, rc2, e2, now_ms() - t0);
}

/* ---- locks ------------------------------------------------------------------------ */

static int cmd_lock(struct tgrun_ctx *ctx, const char *args)
{
	char mode[16], key[64];
	double secs;
	long long t0 = now_ms();
	int rc, e;

	if (sscanf(args, "%15s %63s %lf", mode, key, &secs) != 3)
		return say(ctx, 'u', "lock: bad args");
	errno = 0;
	rc = tgrun_lock(ctx, key, strcmp(mode, "hold") == 0 ? 5 : secs);
	e = errno;
	if (rc != 0)
		return say(ctx, 'u', "lock %s rc=%d errno=%d ms=%lld", mode, rc, e,
		    now_ms() - t0);
	(void)say(ctx, 'g', "got %s", key);
	if (strcmp(mode, "hold") == 0)
		(void)tgrun_sleep(ctx, secs);
	rc = tgrun_unlock(ctx, key);
	/* Not held any more: unlocking again is refused with EPERM. */
	errno = 0;
	e = tgrun_unlock(ctx, key);
	return say(ctx, 'u', "lock %s rc=0 unlock=%d again=%d errno=%d ms=%lld", mode, rc,
	    e, errno, now_ms() - t0);
}

/* ---- Bot API errors ---------------------------------------------------------------- */

static int cmd_api(struct tgrun_ctx *ctx, const char *method, int empty)
{
	struct tgrun_error err;
	long long t0 = now_ms();
	json_t *p = NULL, *r;

	if (strcmp(method, "sendMessage") == 0)
		p = json_pack("{s:I, s:s}", "chat_id", (json_int_t)tgrun_chat_id(ctx),
		    "text", empty ? "" : "payload");
	r = tgrun_call(ctx, method, p, &err);
	json_decref(r);
	return say(ctx, 'u', "api %s ok=%d kind=%d code=%d retry_after=%d maybe=%d ms=%lld",
	    method, r != NULL, (int)err.kind, err.error_code, err.retry_after,
	    r != NULL ? 0 : err.maybe_delivered, now_ms() - t0);
}

/* ---- outside a fiber ------------------------------------------------------------------ */

struct outside {
	struct tgrun_ctx *ctx;
	struct tgrun_waiter *w;
	char key[64];
	int call_null, call_kind, sleep_rc, fd_rc, fd_errno, spawn_null;
	int lock_rc, lock_errno;
	long long ms;
};

/* Holds o->key for 0.3 s. */
static int holder(struct tgrun_ctx *ctx, void *arg)
{
	struct outside *o = arg;

	if (tgrun_lock(ctx, o->key, 1) != 0)
		return -1;
	(void)tgrun_sleep(ctx, 0.3);
	return tgrun_unlock(ctx, o->key);
}

static int never(struct tgrun_ctx *ctx, void *arg)
{
	return 0;
}

static void outside_cb(evutil_socket_t fd, short what, void *arg)
{
	struct outside *o = arg;
	struct tgrun_error err;
	long long t0 = now_ms();
	json_t *r = tgrun_call(o->ctx, "getMe", NULL, &err);

	o->call_null = r == NULL;
	o->call_kind = err.kind;
	json_decref(r);
	o->sleep_rc = tgrun_sleep(o->ctx, 5);
	o->fd_rc = tgrun_wait_fd(o->ctx, 0, TGRUN_READ, 5);
	o->fd_errno = errno;
	o->spawn_null = tgrun_spawn(o->ctx, never, NULL, 0) == NULL;
	/* Held by the holder fiber: waiting is impossible here. */
	o->lock_rc = tgrun_lock(o->ctx, o->key, 5);
	o->lock_errno = errno;
	o->ms = now_ms() - t0;
	(void)tgrun_waiter_done(o->w);
}

static int cmd_outside(struct tgrun_ctx *ctx)
{
	struct outside o = { .ctx = ctx };
	struct timeval tv = { 0, 50 * 1000 };
	struct tgrun_fiber *h;
	int rc, jrc, stray;

	snprintf(o.key, sizeof(o.key), "outside-%lld", (long long)tgrun_update_id(ctx));
	o.w = tgrun_waiter_new(ctx, 1);
	/* The holder runs first (when this fiber yields), the callback 50 ms later. */
	if ((h = tgrun_spawn(ctx, holder, &o, 0)) == NULL)
		return -1;
	if (event_base_once(tgrun_event_base(tgrun_bot(ctx)), -1, EV_TIMEOUT,
	    outside_cb, &o, &tv) != 0)
		return -1;
	rc = tgrun_waiter_wait(o.w, 10);
	tgrun_waiter_free(o.w);
	jrc = tgrun_join(ctx, h, 5, NULL);
	/* The lock went back to nobody, not to this fiber. */
	stray = tgrun_unlock(ctx, o.key);
	return say(ctx, 'u', "outside rc=%d call_null=%d kind=%d sleep=%d fd=%d "
	    "fd_errno=%d spawn_null=%d lock=%d lock_errno=%d join=%d stray=%d ms=%lld",
	    rc, o.call_null, o.call_kind, o.sleep_rc, o.fd_rc, o.fd_errno,
	    o.spawn_null, o.lock_rc, o.lock_errno, jrc, stray, o.ms);
}

/* ---- stack overflow ------------------------------------------------------------------ */

static int deep(int n)
{
	volatile char buf[1024];

	buf[0] = (char)n;
	buf[sizeof(buf) - 1] = (char)n;
	if (n == 0)
		return buf[0];
	return deep(n - 1) + buf[sizeof(buf) - 1];
}

/* ---- dispatch ------------------------------------------------------------------------- */

int tgrun_handle(struct tgrun_ctx *ctx, const json_t *update)
{
	const char *text = json_string_value(json_object_get(
	    json_object_get(update, "message"), "text"));
	char word[32] = "";

	if (text == NULL || tgrun_chat_id(ctx) == 0)
		return 0;
	if (strstr(text, "#overflow") != NULL)
		return deep(1 << 30) == 42 ? 0 : say(ctx, 'u', "survived");
	if (strcmp(text, "all settled") == 0)
		return cmd_all(ctx, 0);
	if (strcmp(text, "all failfast") == 0)
		return cmd_all(ctx, 1);
	if (sscanf(text, "cancel %31s", word) == 1)
		return cmd_cancel(ctx, word, 0);
	if (sscanf(text, "timeout %31s", word) == 1)
		return cmd_cancel(ctx, word, 1);
	if (sscanf(text, "waiter %31s", word) == 1)
		return cmd_waiter(ctx, word);
	if (strncmp(text, "lock ", 5) == 0)
		return cmd_lock(ctx, text + 5);
	if (strncmp(text, "api ", 4) == 0) {
		int empty = strstr(text, " empty") != NULL;

		if (sscanf(text + 4, "%31s", word) != 1)
			return -1;
		return cmd_api(ctx, word, empty);
	}
	if (strcmp(text, "all detached") == 0)
		return cmd_bgall(ctx);
	if (strcmp(text, "outside") == 0)
		return cmd_outside(ctx);
	if (strncmp(text, "sleep ", 6) == 0) {
		int rc = tgrun_sleep(ctx, atof(text + 6));

		return say(ctx, 'u', "slept rc=%d", rc);
	}
	return say(ctx, 'u', "ok");
}
