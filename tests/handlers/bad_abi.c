/* bad_abi.c - test handler declaring an ABI version no worker speaks. */
#include <tgrun.h>

__attribute__((visibility("default"))) const unsigned int tgrun_handler_abi = 999;

int tgrun_handle(struct tgrun_ctx *ctx, const json_t *update)
{
	return 0;
}
