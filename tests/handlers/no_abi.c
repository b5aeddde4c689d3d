/* no_abi.c - test handler that forgot TGRUN_HANDLER: it must be refused. */
#include <tgrun.h>

int tgrun_handle(struct tgrun_ctx *ctx, const json_t *update)
{
	return 0;
}
