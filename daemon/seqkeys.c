/* The sequencer's keys of an update: its chat, user and topic under [order] sequentialize. */
#include "seqkeys.h"

#include "config.h"

/* Kind tags: the same number as a chat, a user or a thread gives three keys. */
enum { KIND_CHAT = 1, KIND_USER = 2, KIND_THREAD = 3 };

static uint64_t mix64(uint64_t x);
static int add_key(uint64_t *out, int n, uint64_t key);

int seqkeys_for(const struct update_keys *k, unsigned seq,
    uint64_t out[SEQKEYS_MAX])
{
	uint64_t chat_key = 0;
	int n = 0;

	if (k->has_chat)
		chat_key = mix64(mix64(KIND_CHAT) ^ (uint64_t)k->chat_id);
	if ((seq & CFG_SEQ_CHAT) && k->has_chat)
		n = add_key(out, n, chat_key);
	if ((seq & CFG_SEQ_USER) && k->has_user)
		n = add_key(out, n, mix64(mix64(KIND_USER) ^ (uint64_t)k->user_id));
	if ((seq & CFG_SEQ_CHAT_THREAD) && k->has_chat) {
		/*
		 * No thread: the chat key itself, so a chat's non-topic
		 * updates stay ordered among themselves.
		 */
		if (k->has_thread)
			n = add_key(out, n, mix64(mix64(mix64(KIND_THREAD) ^
			    (uint64_t)k->chat_id) ^ (uint64_t)k->thread_id));
		else
			n = add_key(out, n, chat_key);
	}
	return n;
}

/*
 * splitmix64's finaliser. It is a bijection, so two chat ids (or two user
 * ids) never share a key; other collisions are chance and only cost extra
 * serialisation, never order.
 */
static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static int add_key(uint64_t *out, int n, uint64_t key)
{
	int i;

	for (i = 0; i < n; i++)
		if (out[i] == key)
			return n;
	out[n] = key;
	return n + 1;
}
