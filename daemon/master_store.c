/* The master's persistence: batches stored before they are confirmed, replay at start, completions, dead letters taken back. */
#include "master.h"
#include "clock.h"
#include "donelog.h"
#include "journal.h"
#include "log.h"
#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

/* Completions are flushed to the store this often, or at this count. */
#define JOURNAL_FLUSH_MS 100
#define JOURNAL_FLUSH_COUNT 512
/* While a batch cannot be written (disk full), retry this often. */
#define JOURNAL_RETRY_MS 1000
/*
 * Waiting for an earlier master's workers to let go of the done log: look
 * this often, and this long past the bound they keep themselves.
 */
#define DONE_LOCK_POLL_MS 20
#define DONE_LOCK_SLACK_MS 2000

static void flush_done(struct master *m);

/* Write every pending update not yet journaled, with the offset, in one transaction. */
static int write_pending(struct master *m)
{
	struct store_rec *recs;
	struct upd **which;
	size_t n = 0, cap = (size_t)master_pending(m), it = 0;
	int rc = 0;

	if (m->store == NULL || cap == 0)
		return 0;
	recs = calloc(cap, sizeof(*recs));
	which = calloc(cap, sizeof(*which));
	if (recs == NULL || which == NULL)
		fatalx("out of memory");
	for (struct upd *u; n < cap && (u = pending_walk(m->pend, &it)) != NULL;) {
		if (u->journaled)
			continue;
		recs[n].update_id = u->id;
		recs[n].body = u->json;
		recs[n].len = u->len;
		which[n++] = u;
	}
	if (n > 0 || m->journal_blocked) {
		if (store_add_batch(m->store, recs, n, m->next_offset) < 0) {
			rc = -1;
		} else {
			for (size_t i = 0; i < n; i++)
				which[i]->journaled = 1;
		}
	}
	free(recs);
	free(which);
	return rc;
}

void master_store_blocked(struct master *m)
{
	struct timeval tv = { JOURNAL_RETRY_MS / 1000, (JOURNAL_RETRY_MS % 1000) * 1000 };

	if (!m->journal_blocked)
		log_err("journal: cannot write fetched updates (%s%s); polling paused "
		    "until it can", store_errmsg(m->store),
		    store_disk_full(m->store) ? ", disk full" : "");
	m->journal_blocked = 1;
	evtimer_add(m->journal_ev, &tv);
}

static void on_journal_timer(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;
	struct timeval tv = { 0, JOURNAL_FLUSH_MS * 1000 };

	if (m->journal_blocked) {
		if (write_pending(m) != 0) {
			master_store_blocked(m);
			return;
		}
		m->journal_blocked = 0;
		log_notice("journal: writable again; polling resumed");
		master_maybe_poll(m);
	}
	if (m->store != NULL && store_done_pending(m->store) > 0)
		flush_done(m);
	evtimer_add(m->journal_ev, &tv);
}

/* Append `id` to a growing array of ids. */
static void push_id(int64_t **ids, size_t *n, size_t *cap, int64_t id)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		int64_t *p = realloc(*ids, c * sizeof(*p));

		if (p == NULL)
			fatalx("out of memory");
		*ids = p;
		*cap = c;
	}
	(*ids)[(*n)++] = id;
}

struct replay {
	struct master *m;
	int64_t *bad;		/* ids that are not usable updates */
	size_t nbad, capbad;
};

static int replay_one(void *arg, int64_t id, const char *body, size_t len, int attempt)
{
	struct replay *r = arg;
	struct master *m = r->m;
	struct upd *u;

	/* It may have been delivered before the restart: say so with the attempt. */
	u = master_add_update(m, body, len, (attempt > 1 ? attempt : 1) + 1, 0);
	if (u == NULL && pending_get(m->pend, id) == NULL) {
		/* The journal cannot be written from inside its own walk: note it. */
		push_id(&r->bad, &r->nbad, &r->capbad, id);
		return 0;
	}
	if (u != NULL) {
		u->journaled = 1;
		if (master_offset_after(id) > m->next_offset)
			m->next_offset = master_offset_after(id);
	}
	return 0;
}

/*
 * The workers of a master that died finish their updates and write them to
 * the done log before they exit, and they hold its lock until then: replay
 * now and those updates would run twice, and out of order.
 */
static int lock_done_log(struct master *m, const char *path)
{
	int64_t t0 = clock_ms(), limit = workers_orphan_limit_ms(m->cfg) + DONE_LOCK_SLACK_MS;
	int r = donelog_trylock(m->done_fd);

	if (r == 1)
		log_notice("journal: %s is locked: waiting up to %lld ms for the workers "
		    "of the previous master to finish their updates", path,
		    (long long)limit);
	while (r == 1 && clock_ms() - t0 < limit) {
		struct timespec ts = { 0, DONE_LOCK_POLL_MS * 1000000L };

		nanosleep(&ts, NULL);
		r = donelog_trylock(m->done_fd);
	}
	if (r == 0) {
		if (clock_ms() - t0 >= DONE_LOCK_POLL_MS)
			log_notice("journal: the previous master's workers are gone "
			    "(waited %lld ms)", (long long)(clock_ms() - t0));
		return 0;
	}
	if (r == 1) {
		log_err("journal: %s is still locked after %lld ms, longer than the "
		    "workers of a dead master live: which process holds it?", path,
		    (long long)(clock_ms() - t0));
		m->exit_status = EXIT_RUNTIME;
	} else {
		log_err("journal: flock(%s): %s", path, strerror(errno));
		m->exit_status = EXIT_CONFIG;
	}
	return -1;
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/*
 * Mark done in the journal what the done log says finished, then empty it.
 * `offset` 0: the journal never stored a batch, so the ids are another
 * journal's. 0, or -1 (logged).
 */
static int take_done_log(struct master *m, const char *path, int64_t offset)
{
	int64_t *ids;
	size_t n, skipped, uniq = 0;

	if (donelog_read(m->done_fd, &ids, &n, &skipped) != 0) {
		log_err("journal: reading %s: %s", path, strerror(errno));
		m->exit_status = EXIT_CONFIG;
		return -1;
	}
	if (skipped > 0)
		log_warn("journal: %s: %zu bytes that are no record skipped", path, skipped);
	if (n > 0 && offset == 0) {
		log_warn("journal: %s names %zu updates of an earlier journal; ignored",
		    path, n);
		n = 0;
	}
	/*
	 * Deleting rows must not lower the stored offset, and a store may read
	 * it from its highest rows: write it down first. If that fails, the
	 * done log stays for the next start and its updates run again.
	 */
	if (n > 0 && store_add_batch(m->store, NULL, 0, offset) < 0) {
		log_warn("journal: storing offset %lld: %s; %s is left for the next "
		    "start", (long long)offset, store_errmsg(m->store), path);
		free(ids);
		return 0;
	}
	if (n > 1)
		qsort(ids, n, sizeof(*ids), cmp_id);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && ids[i] == ids[i - 1])
			continue;
		uniq++;
		if (store_done(m->store, ids[i]) != 0)
			log_warn("journal: cannot queue the completion of update %lld: %s",
			    (long long)ids[i], store_errmsg(m->store));
	}
	free(ids);
	if (uniq > 0)
		log_notice("journal: %zu updates named in %s as finished are marked "
		    "done before the replay", uniq, path);
	/* On failure the replay still skips them, and the done log keeps them. */
	if (store_done_pending(m->store) > 0 && store_flush(m->store) != 0)
		log_warn("journal: flushing completions: %s", store_errmsg(m->store));
	else if (donelog_truncate(m->done_fd) != 0)
		log_warn("journal: ftruncate(%s): %s", path, strerror(errno));
	return 0;
}

static int open_done_log(struct master *m, int64_t offset)
{
	char *path;
	int rc = -1;

	if (asprintf(&path, "%s.done", m->cfg->journal_path) < 0)
		fatalx("out of memory");
	if ((m->done_fd = donelog_open(path)) < 0) {
		log_err("journal: open(%s): %s (the done log lives next to the journal)",
		    path, strerror(errno));
		m->exit_status = EXIT_CONFIG;
	} else if (lock_done_log(m, path) == 0 && take_done_log(m, path, offset) == 0) {
		workers_set_done_log(m->pool, m->done_fd);
		rc = 0;
	}
	free(path);
	return rc;
}

/* Without m->store until this node leads: the timer flushes and retries then. */
static int start_journal_timer(struct master *m)
{
	struct timeval tv = { 0, JOURNAL_FLUSH_MS * 1000 };

	m->journal_ev = evtimer_new(m->base, on_journal_timer, m);
	if (m->journal_ev == NULL || evtimer_add(m->journal_ev, &tv) != 0)
		fatalx("cannot start the journal timer");
	return 0;
}

int master_store_open(struct master *m)
{
	char err[512];
	int64_t off = 0;

	if (m->cfg->cluster_nats != NULL) {
		log_notice("cluster mode: the journal is the JetStream stream; %s is "
		    "not used", m->cfg->journal_path);
		return start_journal_timer(m);
	}
	if (!m->cfg->journal_enabled) {
		log_notice("journal disabled: updates in flight are lost if the master "
		    "dies (at-most-once)");
		return 0;
	}
	m->exit_status = EXIT_CONFIG;
	m->store = journal_store(journal_open(m->cfg->journal_path, m->cfg->journal_sync,
	    err, sizeof(err)));
	if (m->store == NULL) {
		log_err("%s", err);
		return -1;
	}
	if (store_offset(m->store, &off) != 0) {
		log_err("journal %s: %s", m->cfg->journal_path, store_errmsg(m->store));
		return -1;
	}
	/* After the journal: a live master on it would have made journal_open fail. */
	if (open_done_log(m, off) != 0)
		return -1;
	if (master_store_replay(m) != 0)
		return -1;
	m->exit_status = EXIT_OK;
	return start_journal_timer(m);
}

int master_store_replay(struct master *m)
{
	struct replay r = { m, NULL, 0, 0 };
	int64_t off = 0;

	if (store_offset(m->store, &off) != 0 ||
	    store_replay(m->store, replay_one, &r) != 0) {
		log_err("journal %s: %s", m->cfg->cluster_nats ? "stream" :
		    m->cfg->journal_path, store_errmsg(m->store));
		free(r.bad);
		return -1;
	}
	for (size_t i = 0; i < r.nbad; i++) {
		log_err("journal: update %lld is not a usable update; moved to the dead "
		    "letters", (long long)r.bad[i]);
		if (store_dead_letter(m->store, r.bad[i], 0, "not a usable update") != 0)
			log_err("journal: %s", store_errmsg(m->store));
	}
	free(r.bad);
	if (off > m->next_offset)
		m->next_offset = off;
	if (master_pending(m) > 0)
		log_notice("journal: replaying %d unfinished updates before polling "
		    "(offset %lld)", master_pending(m), (long long)m->next_offset);
	return 0;
}

/* Write the queued completions; the done log then holds nothing the journal lacks. */
static void flush_done(struct master *m)
{
	if (store_flush(m->store) != 0) {
		log_warn("journal: flushing completions: %s", store_errmsg(m->store));
		return;
	}
	/* Kept ids were queued before the flush: they are in the journal too. */
	m->ndone_ids = 0;
	if (m->done_fd >= 0 && donelog_truncate(m->done_fd) != 0)
		log_warn("journal: ftruncate(%s.done): %s", m->cfg->journal_path,
		    strerror(errno));
}

void master_store_done(struct master *m, int64_t id)
{
	if (m->store == NULL)
		return;
	if (store_done(m->store, id) != 0)
		log_warn("journal: cannot queue the completion of update %lld: %s",
		    (long long)id, store_errmsg(m->store));
	if (m->done_fd >= 0) {
		push_id(&m->done_ids, &m->ndone_ids, &m->done_cap, id);
	}
	if (store_done_pending(m->store) >= JOURNAL_FLUSH_COUNT)
		flush_done(m);
}

void master_store_record(struct master *m)
{
	if (m->ndone_ids == 0)
		return;
	if (donelog_append(m->done_fd, m->done_ids, m->ndone_ids) != 0) {
		if (!m->done_log_failing)
			log_warn("journal: write(%s.done): %s; until it works, a crash "
			    "re-runs what finished since the last flush",
			    m->cfg->journal_path, strerror(errno));
		m->done_log_failing = 1;
	} else if (m->done_log_failing) {
		log_notice("journal: %s.done is written again", m->cfg->journal_path);
		m->done_log_failing = 0;
	}
	m->ndone_ids = 0;
}

void master_store_close(struct master *m)
{
	if (m->store != NULL && store_done_pending(m->store) > 0)
		flush_done(m);
	store_close(m->store);
	m->store = NULL;
	if (m->done_fd >= 0)
		close(m->done_fd);
	m->done_fd = -1;
	free(m->done_ids);
	m->done_ids = NULL;
	m->ndone_ids = m->done_cap = 0;
}

static int take_one(void *arg, int64_t id, const char *body, size_t len, int attempt)
{
	struct master *m = arg;
	struct upd *u;

	/* master_add_update() skips the ids that are pending already. */
	u = master_add_update(m, body, len, attempt > 0 ? attempt : 1, 0);
	if (u != NULL) {
		u->journaled = 1;
		log_notice("update %lld: taken back from the dead letters", (long long)id);
	}
	return 0;
}

int master_take_journaled(struct master *m)
{
	int before = master_pending(m);

	if (m->store == NULL)
		return 0;
	if (store_replay(m->store, take_one, m) != 0) {
		log_err("journal: reading retried dead letters: %s",
		    store_errmsg(m->store));
		return -1;
	}
	master_dispatch(m);
	return master_pending(m) - before;
}
