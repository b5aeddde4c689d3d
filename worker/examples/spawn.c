/*
 * spawn.c - background work with tgrun_spawn.
 *
 * On "/work" it answers at once, then starts two fibers:
 *   - an attached child that "computes" for 0.5 s and sends the result. It
 *     belongs to the update: the update is done (and the next update of this
 *     chat starts) only after the child returned;
 *   - a TGRUN_DETACHED fiber that sends a reminder 1.5 s later. It outlives
 *     the update; only a shutdown cancels it, and a failure is logged.
 * Any other text is answered with "echo: <text>".
 *
 * Build:  cc -shared -fPIC -Wl,-z,noexecstack $(pkg-config --cflags tgrun) \
 *             -o spawn.so spawn.c
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tgrun.h>

TGRUN_HANDLER;

static int send(struct tgrun_ctx *ctx, int64_t chat, const char *text)
{
	json_t *r = tgrun_send_text(ctx, chat, text, NULL);

	json_decref(r);
	return r ? 0 : -1;
}

/* The attached child: its ctx belongs to the same update as its parent's. */
static int compute(struct tgrun_ctx *ctx, void *arg)
{
	if (tgrun_sleep(ctx, 0.5) != 0)
		return -1;		/* cancelled */
	return send(ctx, tgrun_chat_id(ctx), "result: 42");
}

/*
 * The detached fiber has no update (tgrun_chat_id() is 0 there), so it gets
 * what it needs through arg, on the heap: the update's memory may be gone.
 */
static int remind(struct tgrun_ctx *ctx, void *arg)
{
	int64_t chat = *(int64_t *)arg;
	int rc = -1;

	if (tgrun_sleep(ctx, 1.5) == 0)
		rc = send(ctx, chat, "reminder: the work is done");
	free(arg);
	return rc;
}

int tgrun_handle(struct tgrun_ctx *ctx, const json_t *update)
{
	const char *text = json_string_value(json_object_get(
	    json_object_get(update, "message"), "text"));
	int64_t chat = tgrun_chat_id(ctx), *copy;
	char echo[256];

	if (text == NULL || chat == 0)
		return 0;
	if (strcmp(text, "/work") != 0) {
		snprintf(echo, sizeof(echo), "echo: %s", text);
		return send(ctx, chat, echo);
	}
	if (send(ctx, chat, "started") != 0)
		return -1;
	/* The children start running once this fiber yields (or returns). */
	if (tgrun_spawn(ctx, compute, NULL, 0) == NULL)
		return -1;
	copy = malloc(sizeof(*copy));
	if (copy == NULL)
		return -1;
	*copy = chat;
	if (tgrun_spawn(ctx, remind, copy, TGRUN_DETACHED) == NULL) {
		free(copy);
		return -1;
	}
	return 0;	/* the update ends when compute() has returned */
}
