/*
 * bigframe.c - test handler for the guard region below fiber stacks
 * (tests/integration/test_runtime.py).
 *
 * Built with -fno-stack-clash-protection (see the Makefile), as handler code
 * built without tgrun.pc's flags is: a large frame is then allocated in one
 * step, and written first at its far end. "#bigframe" descends (1 KiB frames,
 * each touched, so nothing is skipped on the way) to about 12 KiB above the
 * bottom of its stack ([handler] stack = the fiber stack size in bytes), then
 * takes a 32 KiB frame whose lowest byte lies some 20 KiB below the stack:
 * past a 4 KiB guard page, inside a 64 KiB guard region. If that write does
 * not fault, the handler answers "u<update_id> survived"; anything else is
 * answered "u<update_id> ok".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tgrun.h>

#include "reply.h"

TGRUN_HANDLER;

#define BIG (32 * 1024)

static __attribute__((noinline)) int big(size_t n)
{
	volatile char buf[n];

	buf[0] = 1;		/* the far end first */
	buf[n - 1] = 2;
	return buf[0] + buf[n - 1];
}

static __attribute__((noinline)) int descend(uintptr_t limit)
{
	volatile char pad[1024];

	pad[0] = pad[sizeof(pad) - 1] = 1;
	if ((uintptr_t)__builtin_frame_address(0) > limit)
		return descend(limit) + pad[0];
	return big(BIG) + pad[sizeof(pad) - 1];
}

int tgrun_handle(struct tgrun_ctx *ctx, const json_t *update)
{
	const char *text = json_string_value(json_object_get(
	    json_object_get(update, "message"), "text"));
	const char *stack = tgrun_config(tgrun_bot(ctx), "stack");
	uintptr_t top = (uintptr_t)__builtin_frame_address(0);
	size_t size = stack ? strtoul(stack, NULL, 10) : 0;

	if (text == NULL || strcmp(text, "#bigframe") != 0 || size < 64 * 1024)
		return reply_uid(ctx, "ok");
	(void)descend(top - size + 12 * 1024);
	return reply_uid(ctx, "survived");
}
