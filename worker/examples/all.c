/*
 * all.c - run several Bot API calls at once with tgrun_all.
 *
 * For every text message it makes three calls concurrently, each on its
 * own fiber: getMe, sendChatAction ("typing") and sendMessage. tgrun_all
 * returns when all three are finished, and results[i] always describes
 * fns[i], whatever order they finished in. Then it reports one line:
 *
 *     getMe=ok sendChatAction=ok sendMessage=ok (@fakebot)
 *
 * Build:  cc -shared -fPIC -Wl,-z,noexecstack $(pkg-config --cflags tgrun) \
 *             -o all.so all.c
 */
#include <stdio.h>
#include <string.h>
#include <tgrun.h>

TGRUN_HANDLER;

/* What the three functions share: the chat, and what getMe told us. */
struct job {
	int64_t chat;
	char username[64];
};

static int get_me(struct tgrun_ctx *ctx, void *arg)
{
	struct job *job = arg;
	json_t *me = tgrun_call(ctx, "getMe", NULL, NULL);
	const char *name;

	if (me == NULL)
		return -1;		/* a non-zero return marks the slot FAILED */
	name = json_string_value(json_object_get(me, "username"));
	snprintf(job->username, sizeof(job->username), "%s", name ? name : "?");
	json_decref(me);
	return 0;
}

static int typing(struct tgrun_ctx *ctx, void *arg)
{
	struct job *job = arg;
	json_t *r = tgrun_call(ctx, "sendChatAction", json_pack("{s:I, s:s}",
	    "chat_id", (json_int_t)job->chat, "action", "typing"), NULL);

	json_decref(r);
	return r ? 0 : -1;
}

static int send_note(struct tgrun_ctx *ctx, void *arg)
{
	struct job *job = arg;
	json_t *r = tgrun_send_text(ctx, job->chat, "working on it", NULL);

	json_decref(r);
	return r ? 0 : -1;
}

int tgrun_handle(struct tgrun_ctx *ctx, const json_t *update)
{
	static const char *const names[] = { "getMe", "sendChatAction", "sendMessage" };
	static const char *const status[] = { "ok", "failed", "cancelled", "timeout" };
	const tgrun_fn fns[3] = { get_me, typing, send_note };
	struct job job = { .chat = tgrun_chat_id(ctx), .username = "" };
	/* args may live on this stack: tgrun_all returns only when all are done. */
	void *const args[3] = { &job, &job, &job };
	struct tgrun_result results[3];
	char line[256];
	size_t off = 0;
	json_t *r;

	if (job.chat == 0)
		return 0;
	/* Settled mode: one failure does not cancel the others; 10 s at most. */
	(void)tgrun_all(ctx, 3, fns, args, results, TGRUN_ALL_SETTLED, 10);
	for (size_t i = 0; i < 3; i++)
		off += (size_t)snprintf(line + off, sizeof(line) - off, "%s=%s ",
		    names[i], status[results[i].status]);
	snprintf(line + off, sizeof(line) - off, "(@%s)", job.username);
	r = tgrun_reply(ctx, update, line, NULL);
	json_decref(r);
	return r ? 0 : -1;
}
