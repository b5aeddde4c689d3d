/*
 * reupload.c - download a file a user sent and send it back.
 *
 * When a message carries a document (any file sent "as a file"), the
 * handler downloads it with tgrun_download() to a temporary path and sends
 * it back to the same chat with tgrun_upload() (a multipart sendDocument),
 * as a reply to the original message. It shows both halves of file
 * handling: getting a file by its file_id, and uploading one from disk.
 *
 * Both calls look blocking, but each yields its fiber while the bytes move,
 * so the worker keeps serving other updates meanwhile.
 *
 * Build:  cc -shared -fPIC -Wl,-z,noexecstack $(pkg-config --cflags tgrun) \
 *             -o reupload.so reupload.c
 * Config: [workers] handler = /path/to/reupload.so
 *         [handler] dir = /var/tmp   (optional: where downloads go; default /tmp)
 */
#include <stdio.h>
#include <unistd.h>
#include <tgrun.h>

TGRUN_HANDLER;

int tgrun_handle(struct tgrun_ctx *ctx, const json_t *update)
{
	struct tgrun_bot *bot = tgrun_bot(ctx);
	const char *dir = tgrun_config(bot, "dir");
	struct tgrun_error err;
	struct tgrun_file file = { .field = "document" };
	const json_t *msg, *doc;
	const char *file_id, *name;
	char path[512];
	json_t *params, *sent;

	/* Only messages with a document interest us; everything else is done. */
	msg = json_object_get(update, "message");
	doc = json_object_get(msg, "document");
	file_id = json_string_value(json_object_get(doc, "file_id"));
	if (file_id == NULL)
		return 0;
	name = json_string_value(json_object_get(doc, "file_name"));

	/*
	 * A path of our own: the update id makes it unique in this worker, the
	 * pid across workers. tgrun_download() writes "<path>.XXXXXX" first and
	 * renames it, so a half-downloaded file never appears under `path`.
	 */
	snprintf(path, sizeof(path), "%s/tgrun-reupload-%d-%lld",
	    dir ? dir : "/tmp", (int)getpid(), (long long)tgrun_update_id(ctx));
	if (tgrun_download(ctx, file_id, path, &err) != 0) {
		tgrun_log(bot, 4, "reupload: download of update %lld failed: %s",
		    (long long)tgrun_update_id(ctx), err.description);
		/* Returning -1 marks the update failed; the daemon may retry it. */
		return -1;
	}

	/*
	 * Send it back. The file part reads from `path` while the request goes
	 * out; `filename` keeps the user's name instead of our temporary one.
	 * tgrun_upload() takes over `params` (no json_decref needed).
	 */
	file.path = path;
	file.filename = name ? name : "file";
	params = json_pack("{s:I, s:s, s:{s:O}}",
	    "chat_id", (json_int_t)tgrun_chat_id(ctx),
	    "caption", "here is your file back",
	    "reply_parameters", "message_id", json_object_get(msg, "message_id"));
	sent = tgrun_upload(ctx, "sendDocument", params, &file, 1, &err);

	/* The temporary copy is ours to delete, whatever happened. */
	unlink(path);
	if (sent == NULL) {
		tgrun_log(bot, 4, "reupload: sendDocument failed: %s", err.description);
		return -1;
	}
	json_decref(sent);	/* the Message we sent: a new reference */
	return 0;
}
