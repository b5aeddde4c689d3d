/* tgrund: command line, config and token, then the master loop. */
#include "botapi.h"
#include "config.h"
#include "frame.h"
#include "log.h"
#include "master.h"
#include "notify.h"
#include "token.h"
#include "workers.h"

#include <curl/curl.h>
#include <event2/buffer.h>
#include <jansson.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: tgrund [-t] [-v] -c FILE\n"
	    "  -c FILE  the bot's config file\n"
	    "  -t       check the config and the handler, then exit\n"
	    "  -v       more log output (repeat for debug)\n"
	    "exit status: 0 stopped, 1 runtime failure, 2 bad config or handler,\n"
	    "             3 token rejected by the Bot API\n");
}

/*
 * Start the handler in a throw-away worker process (the master never loads
 * user code): it gets the settings a worker gets, so its tgrun_init runs
 * with the [handler] section (a Lua script is loaded and compiled there),
 * then tgrun_fini, and it exits.
 */
static int check_handler(const struct config *cfg, const char *token)
{
	char *worker = workers_find_binary(), *text = NULL;
	struct evbuffer *out = evbuffer_new();
	json_t *set = workers_settings(cfg, 0, 1, token, 0, 0);
	int sv[2] = { -1, -1 }, st, rc = -1;
	pid_t pid = -1;

	if (worker == NULL || out == NULL || set == NULL ||
	    (text = json_dumps(set, JSON_COMPACT)) == NULL ||
	    frame_write(out, FRAME_CONFIG, 0, 0, 0, text, strlen(text)) != 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		log_err("cannot start a worker to check the handler");
		goto fail;
	}
	pid = fork();
	if (pid == 0) {
		notify_scrub_env();
		if (dup2(sv[1], FRAME_WORKER_FD) < 0)
			_exit(127);
		execl(worker, "tgrun-worker", "--check", cfg->handler, (char *)NULL);
		fprintf(stderr, "exec %s failed\n", worker);
		_exit(127);
	}
	close(sv[1]);
	sv[1] = -1;
	/*
	 * The frame is small; the worker reads it before anything else. The
	 * socket stays open until the worker exits: an EOF would stop it.
	 */
	while (pid > 0 && evbuffer_get_length(out) > 0)
		if (evbuffer_write(out, sv[0]) < 0)
			break;
	if (pid > 0 && waitpid(pid, &st, 0) == pid)
		rc = WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
fail:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (text != NULL) {
		explicit_bzero(text, strlen(text));
		free(text);
	}
	json_decref(set);
	if (out != NULL)
		evbuffer_free(out);
	free(worker);
	return rc;
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	struct config *cfg;
	char err[1024];
	char *token;
	int c, check = 0, verbose = 0, status;

	log_init("master", -1);
	while ((c = getopt(argc, argv, "c:tvh")) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 't': check = 1; break;
		case 'v': verbose++; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_CONFIG;
		}
	}
	if (path == NULL || optind != argc) {
		usage(stderr);
		return EXIT_CONFIG;
	}
	cfg = config_load(path, err, sizeof(err));
	if (cfg == NULL) {
		log_err("%s", err);
		return EXIT_CONFIG;
	}
	log_set_level((enum log_level)cfg->log_level);
	if (verbose)
		log_set_level(verbose > 1 || cfg->log_level >= LOG_LVL_INFO ?
		    LOG_LVL_DEBUG : LOG_LVL_INFO);
	token = token_load(cfg, err, sizeof(err));
	if (token == NULL) {
		log_err("%s", err);
		config_free(cfg);
		return EXIT_CONFIG;
	}
	log_add_secret(token);
	botapi_proxy_secrets(cfg->api_proxy);
	if (check) {
		status = check_handler(cfg, token) == 0 ? EXIT_OK : EXIT_CONFIG;
		if (status == EXIT_OK)
			printf("%s: configuration and handler are valid\n", path);
		free(token);
		config_free(cfg);
		return status;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		log_err("curl_global_init failed");
		return EXIT_RUNTIME;
	}
	status = master_run(cfg, token);	/* frees cfg */
	explicit_bzero(token, strlen(token));
	free(token);
	curl_global_cleanup();
	return status;
}
