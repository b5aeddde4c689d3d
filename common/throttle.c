/* Flood limits shared by all workers: token buckets in memory the master creates. */
#include "throttle.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define THROTTLE_MAGIC	0x74677274u	/* "tgrt" */
#define THROTTLE_VERSION 1

/*
 * Each bucket is kept as GCRA state: `tat`, the time (ns) at which the bucket
 * would be full again. With interval T = period / n (rounded up: never
 * faster than configured) and capacity n, a token is there at `now` iff
 * tat - now <= (n - 1) * T; taking it moves tat to max(tat, now) + T. This is
 * exactly a bucket of n tokens refilled continuously at n per period, in one
 * integer per bucket; a zeroed bucket is full.
 */
struct limit {
	int64_t interval_ns;	/* T */
	int64_t cap_ns;		/* n * T: a full bucket's worth of time */
};

/*
 * One chat's buckets. Slots are direct-mapped by a hash of the chat id: two
 * chats that hash alike while both are busy share the slot, so each waits
 * as if the other's messages were its own. That is conservative (a limit is
 * never exceeded), rare with 65536 slots, and keeps every call O(1) with no
 * expiry to run. A slot whose buckets are full again carries no state and
 * is simply taken over by the next chat.
 */
struct slot {
	int64_t chat_id;	/* 0 = never used */
	int64_t chat_tat;
	int64_t group_tat;
};

enum { LIM_GLOBAL, LIM_CHAT, LIM_GROUP, LIM__COUNT };

/*
 * The shared memory. Every field below `lock` is read and written only under
 * it. One lock for everything: every throttled call takes the global bucket,
 * so finer locks would not let two calls proceed at once, and one lock makes
 * "all buckets or none" trivial. It is robust: a worker killed while
 * holding it (only ever a few loads and stores) leaves at worst some of its
 * buckets updated, i.e. a token taken that was not used.
 */
struct shm {
	uint32_t magic;
	uint32_t version;
	uint64_t size;			/* bytes, as mapped */
	uint32_t nslots;
	uint32_t reserved;
	pthread_mutex_t lock;
	struct throttle_rates rates;	/* as configured, for diagnostics */
	struct limit lim[LIM__COUNT];
	int64_t global_tat;
	uint64_t granted, refused, shared;
	struct slot slots[];
};

struct throttle {
	struct shm *shm;
	size_t size;
	int fd;			/* the master's memfd, -1 in a worker */
};

static int lock(struct shm *s);
static int limits_set(struct shm *s, const struct throttle_rates *r);
static struct slot *slot_of(struct shm *s, int64_t chat_id, int64_t now);
static int64_t need(const struct limit *l, int64_t *tat, int64_t now);

static size_t shm_size(void)
{
	return sizeof(struct shm) + (size_t)THROTTLE_SLOTS * sizeof(struct slot);
}

struct throttle *throttle_create(const struct throttle_rates *r)
{
	struct throttle *t;
	pthread_mutexattr_t ma;
	int e;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->size = shm_size();
	t->shm = MAP_FAILED;
	if ((t->fd = memfd_create("tgrun-throttle", MFD_CLOEXEC)) < 0)
		goto fail;
	if (ftruncate(t->fd, (off_t)t->size) != 0)
		goto fail;
	t->shm = mmap(NULL, t->size, PROT_READ | PROT_WRITE, MAP_SHARED, t->fd, 0);
	if (t->shm == MAP_FAILED)
		goto fail;
	/* ftruncate gave zeroes: every slot unused, every bucket full. */
	if ((e = pthread_mutexattr_init(&ma)) != 0 ||
	    (e = pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED)) != 0 ||
	    (e = pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST)) != 0 ||
	    (e = pthread_mutex_init(&t->shm->lock, &ma)) != 0) {
		errno = e;
		goto fail;
	}
	pthread_mutexattr_destroy(&ma);
	if (limits_set(t->shm, r) != 0)
		goto fail;
	t->shm->size = t->size;
	t->shm->nslots = THROTTLE_SLOTS;
	t->shm->version = THROTTLE_VERSION;
	t->shm->magic = THROTTLE_MAGIC;
	return t;
fail:
	e = errno;
	throttle_close(t);
	errno = e;
	return NULL;
}

struct throttle *throttle_attach(int fd, char *err, size_t errlen)
{
	struct throttle *t;
	struct stat st;
	struct shm *s;

	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "fd %d: %s", fd, strerror(errno));
		return NULL;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != shm_size()) {
		snprintf(err, errlen, "fd %d is not the master's throttle memory "
		    "(size %lld, expected %zu)", fd, (long long)st.st_size, shm_size());
		return NULL;
	}
	s = mmap(NULL, shm_size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (s == MAP_FAILED) {
		snprintf(err, errlen, "mmap of fd %d: %s", fd, strerror(errno));
		return NULL;
	}
	if (s->magic != THROTTLE_MAGIC || s->version != THROTTLE_VERSION ||
	    s->size != shm_size() || s->nslots != THROTTLE_SLOTS) {
		snprintf(err, errlen, "fd %d: throttle memory of another version "
		    "(magic %#x, version %u; expected %#x, %u)", fd, s->magic,
		    s->version, THROTTLE_MAGIC, THROTTLE_VERSION);
		munmap(s, shm_size());
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "out of memory");
		munmap(s, shm_size());
		return NULL;
	}
	t->shm = s;
	t->size = shm_size();
	t->fd = -1;
	close(fd);	/* the mapping is all a worker needs; handlers never see the fd */
	return t;
}

void throttle_close(struct throttle *t)
{
	if (t == NULL)
		return;
	if (t->shm != NULL && t->shm != MAP_FAILED)
		munmap(t->shm, t->size);
	if (t->fd >= 0)
		close(t->fd);
	free(t);
}

int throttle_fd(const struct throttle *t)
{
	return t->fd;
}

int throttle_set_rates(struct throttle *t, const struct throttle_rates *r)
{
	int rc;

	if (lock(t->shm) != 0)
		return -1;
	rc = limits_set(t->shm, r);
	pthread_mutex_unlock(&t->shm->lock);
	return rc;
}

int throttle_acquire(struct throttle *t, int64_t chat_id, int64_t now_us,
    int64_t *wait_us)
{
	struct shm *s = t->shm;
	int64_t now = now_us * 1000, wait, w;
	int64_t g, c = 0, gr = 0;
	struct slot *sl = NULL;

	if (lock(s) != 0)
		return -1;
	/* Work on copies: nothing is stored unless every bucket has a token. */
	g = s->global_tat;
	wait = need(&s->lim[LIM_GLOBAL], &g, now);
	if (chat_id != 0) {
		sl = slot_of(s, chat_id, now);
		c = sl->chat_tat;
		if ((w = need(&s->lim[LIM_CHAT], &c, now)) > wait)
			wait = w;
		if (chat_id < 0) {
			gr = sl->group_tat;
			if ((w = need(&s->lim[LIM_GROUP], &gr, now)) > wait)
				wait = w;
		}
	}
	if (wait > 0) {
		s->refused++;
		pthread_mutex_unlock(&s->lock);
		*wait_us = (wait + 999) / 1000;
		return 1;
	}
	s->global_tat = g;
	if (sl != NULL) {
		sl->chat_tat = c;
		if (chat_id < 0)
			sl->group_tat = gr;
		if (sl->chat_id != chat_id)
			s->shared++;
	}
	s->granted++;
	pthread_mutex_unlock(&s->lock);
	*wait_us = 0;
	return 0;
}


int throttle_method_counts(const char *method)
{
	static const char *const others[] = {
		"copyMessage", "copyMessages", "forwardMessage", "forwardMessages",
	};

	/* Every send* method posts a message, but a chat action is only a status. */
	if (strncmp(method, "send", 4) == 0)
		return strcmp(method, "sendChatAction") != 0;
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		if (strcmp(method, others[i]) == 0)
			return 1;
	return 0;
}

void throttle_counters(struct throttle *t, uint64_t *granted, uint64_t *refused,
    uint64_t *shared)
{
	*granted = *refused = *shared = 0;
	if (lock(t->shm) != 0)
		return;
	*granted = t->shm->granted;
	*refused = t->shm->refused;
	*shared = t->shm->shared;
	pthread_mutex_unlock(&t->shm->lock);
}

int throttle_test_hold_lock(struct throttle *t)
{
	return lock(t->shm);
}

/* 0 with the lock held, or -1 with errno. */
static int lock(struct shm *s)
{
	int e = pthread_mutex_lock(&s->lock);

	if (e == EOWNERDEAD) {
		/*
		 * Its holder died mid-update: the buckets are still valid
		 * numbers (at worst a token was taken and not used).
		 */
		e = pthread_mutex_consistent(&s->lock);
	}
	if (e != 0) {
		errno = e;
		return -1;
	}
	return 0;
}

static int limits_set(struct shm *s, const struct throttle_rates *r)
{
	const struct throttle_rate *in[LIM__COUNT] = { &r->global, &r->chat, &r->group };

	for (int i = 0; i < LIM__COUNT; i++) {
		/* At most 1000 s per token: n * T stays far from overflow. */
		if (in[i]->n < 1 || in[i]->period_us < 1 ||
		    in[i]->n > 1000000000 || in[i]->period_us > 1000000000) {
			errno = EINVAL;
			return -1;
		}
	}
	for (int i = 0; i < LIM__COUNT; i++) {
		int64_t n = in[i]->n, T = (in[i]->period_us * 1000 + n - 1) / n;

		s->lim[i].interval_ns = T;
		s->lim[i].cap_ns = T * n;
	}
	s->rates = *r;
	return 0;
}

/* splitmix64's finaliser: chat ids are far from uniform in their low bits. */
static uint32_t slot_hash(int64_t chat_id)
{
	uint64_t x = (uint64_t)chat_id;

	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return (uint32_t)(x & (THROTTLE_SLOTS - 1));
}

static struct slot *slot_of(struct shm *s, int64_t chat_id, int64_t now)
{
	struct slot *sl = &s->slots[slot_hash(chat_id)];

	/* Full buckets hold no state: the slot is free for whoever comes. */
	if (sl->chat_id != chat_id && sl->chat_tat <= now && sl->group_tat <= now) {
		sl->chat_id = chat_id;
		sl->chat_tat = sl->group_tat = 0;
	}
	return sl;
}

/*
 * How long (ns) until the bucket at *tat has a token, 0 if it has one now;
 * *tat becomes its state after taking that token.
 */
static int64_t need(const struct limit *l, int64_t *tat, int64_t now)
{
	int64_t t = *tat;

	if (t < now)
		t = now;
	/* After a rate change: no debt beyond the new capacity. */
	if (t > now + l->cap_ns)
		t = now + l->cap_ns;
	*tat = t + l->interval_ns;
	return t + l->interval_ns - now > l->cap_ns ?
	    t + l->interval_ns - now - l->cap_ns : 0;
}
