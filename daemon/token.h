/* Reading the bot token from a systemd credential, a file, the config or the environment. */
#ifndef TGRUN_TOKEN_H
#define TGRUN_TOKEN_H

#include <stddef.h>

struct config;

/*
 * Find the token: $CREDENTIALS_DIRECTORY/token, else [bot] token_file, else
 * [bot] token, else $TGRUN_TOKEN. Returns a malloc'd string, or NULL with
 * `err` filled (never containing the token).
 */
char *token_load(const struct config *cfg, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
