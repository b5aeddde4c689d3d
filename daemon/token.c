/* Reading the bot token from a systemd credential, a file, the config or the environment. */
#include "token.h"
#include "botapi.h"
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *read_token_file(const char *path, char *err, size_t errlen)
{
	char buf[256];
	size_t n;
	FILE *f = fopen(path, "re");

	if (f == NULL) {
		snprintf(err, errlen, "token file %s: %s", path, strerror(errno));
		return NULL;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
	    buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		buf[--n] = '\0';
	if (n == 0) {
		snprintf(err, errlen, "token file %s is empty", path);
		return NULL;
	}
	return strdup(buf);
}

char *token_load(const struct config *cfg, char *err, size_t errlen)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	const char *where;
	char *tok = NULL, path[4096];

	if (dir != NULL && *dir != '\0') {
		snprintf(path, sizeof(path), "%s/token", dir);
		if (access(path, F_OK) == 0) {
			where = "the credential $CREDENTIALS_DIRECTORY/token";
			tok = read_token_file(path, err, errlen);
			goto check;
		}
	}
	if (cfg->token_file != NULL) {
		where = cfg->token_file;
		tok = read_token_file(cfg->token_file, err, errlen);
	} else if (cfg->token != NULL) {
		where = "[bot] token";
		tok = strdup(cfg->token);
	} else if (getenv("TGRUN_TOKEN") != NULL && *getenv("TGRUN_TOKEN") != '\0') {
		where = "$TGRUN_TOKEN";
		tok = strdup(getenv("TGRUN_TOKEN"));
	} else {
		snprintf(err, errlen, "%s: no bot token: set [bot] token_file, use "
		    "LoadCredential=token:..., or set TGRUN_TOKEN", cfg->path);
		return NULL;
	}
check:
	if (tok == NULL)
		return NULL;
	if (!botapi_token_valid(tok)) {
		snprintf(err, errlen, "the token from %s is not a bot token "
		    "(expected digits, ':', then letters, digits, '_' or '-')", where);
		free(tok);
		return NULL;
	}
	return tok;
}
