/* The sequencer's keys of an update: its chat, user and topic under [order] sequentialize. */
#ifndef TGRUN_SEQKEYS_H
#define TGRUN_SEQKEYS_H

#include <stdint.h>

#include "keys.h"

#define SEQKEYS_MAX 3
/*
 * The sequencing keys for `k` under CFG_SEQ_* bits `seq`, as 64-bit hashes
 * distinct per kind (a chat id never equals a user id key). A kind the update
 * does not carry gives no key; CFG_SEQ_CHAT_THREAD on an update without a
 * thread gives the chat key, so it still orders within its chat. Equal keys
 * are written once. Returns how many (0..SEQKEYS_MAX) were written to `out`.
 */
int seqkeys_for(const struct update_keys *k, unsigned seq,
    uint64_t out[SEQKEYS_MAX]);

#endif
