/* tgrund: command line, config and token, then the master loop. */
#include "botapi.h"
#include "config.h"
#include "log.h"
#include "master.h"
#include "notify.h"
#include "token.h"

#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Load the handler in a throw-away worker process: the master never loads user code. */
static int check_handler(const char *handler)
{
	char *worker = workers_find_binary();
	pid_t pid;
	int st;

	if (worker == NULL)
		return -1;
	pid = fork();
	if (pid == 0) {
		notify_scrub_env();
		execl(worker, "tgrun-worker", "--check", handler, (char *)NULL);
		fprintf(stderr, "exec %s failed\n", worker);
		_exit(127);
	}
	free(worker);
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
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
		status = check_handler(cfg->handler) == 0 ? EXIT_OK : EXIT_CONFIG;
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
