/* Fiber contexts: what a fiber works for, its cancellation, parking it, sleep. */
#include "tgrun.h"
#include "frame.h"
#include "worker.h"
#include "sched.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t ctx_timeout_ms(double s)
{
	return s < 0 ? -1 : (int64_t)(s * 1000.0 + 0.5);
}

struct tgrun_ctx *ctx_new(struct tgrun_bot *bot, struct wupdate *u)
{
	struct tgrun_ctx *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->bot = bot;
	c->u = u;
	LIST_INIT(&c->locks);
	LIST_INSERT_HEAD(u ? &u->ctxs : &bot->w->background, c, link);
	return c;
}

void ctx_free(struct tgrun_ctx *c)
{
	if (c == NULL)
		return;
	locks_release_all(c);
	LIST_REMOVE(c, link);
	free(c);
}

void ctx_update_error(struct wupdate *u, const char *text, int explicit)
{
	size_t n = strcspn(text, "\r\n");

	if (u->err_explicit && !explicit)
		return;
	if (n > FRAME_DONE_ERR_MAX) {
		n = FRAME_DONE_ERR_MAX;
		/* Not inside a UTF-8 character: back to its first byte. */
		while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80)
			n--;
	}
	free(u->err);
	u->err = strndup(text, n);
	u->err_explicit = explicit && u->err != NULL;
}

void ctx_note_call_error(const char *desc)
{
	struct task *t = sched_current();
	struct tgrun_ctx *ctx = t ? task_data(t) : NULL;

	if (ctx != NULL && ctx->u != NULL)
		ctx_update_error(ctx->u, desc, 0);
}

void ctx_note_ambiguous(void)
{
	struct task *t = sched_current();
	struct tgrun_ctx *ctx = t ? task_data(t) : NULL;

	if (ctx != NULL && ctx->u != NULL)
		ctx->u->no_retry = 1;
}

int tgrun_fail(struct tgrun_ctx *ctx, const char *fmt, ...)
{
	char text[FRAME_DONE_ERR_MAX * 2];
	va_list ap;

	if (ctx == NULL || ctx->u == NULL || fmt == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	ctx_update_error(ctx->u, text, 1);
	return -1;
}

void tgrun_no_retry(struct tgrun_ctx *ctx)
{
	if (ctx != NULL && ctx->u != NULL)
		ctx->u->no_retry = 1;
}

int ctx_in_fiber(const struct tgrun_ctx *ctx)
{
	return ctx != NULL && ctx->task != NULL && sched_current() == ctx->task;
}

int tgrun_cancelled(struct tgrun_ctx *ctx)
{
	return (ctx->task != NULL && task_cancelled(ctx->task)) ||
	    (ctx->u != NULL && ctx->u->cancelled);
}

void ctx_cancel_update(struct worker *w, struct wupdate *u)
{
	struct tgrun_ctx *c;

	u->cancelled = 1;
	LIST_FOREACH(c, &u->ctxs, link)
		if (c->task != NULL)
			sched_cancel(c->task);
}

void ctx_cancel_background(struct worker *w)
{
	struct tgrun_ctx *c;

	LIST_FOREACH(c, &w->background, link)
		if (c->task != NULL)
			sched_cancel(c->task);
}

int ctx_park(struct tgrun_ctx *ctx, const char *what, task_abort_fn abort,
    void *obj, int64_t timeout_ms)
{
	int st;

	if (!ctx_in_fiber(ctx)) {
		errno = EPERM;
		return -1;
	}
	if (tgrun_cancelled(ctx)) {
		if (abort)
			abort(ctx->task, obj);
		errno = ECANCELED;
		return -1;
	}
	st = sched_park(what, abort, obj, timeout_ms);
	if (st != 0) {
		errno = st;
		return -1;
	}
	return 0;
}

int tgrun_sleep(struct tgrun_ctx *ctx, double seconds)
{
	int64_t ms = ctx_timeout_ms(seconds > 0 ? seconds : 0);

	if (ctx_park(ctx, "sleep", NULL, NULL, ms) == 0 || errno == ETIMEDOUT)
		return 0;
	return -1;
}
