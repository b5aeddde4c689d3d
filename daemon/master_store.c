/* The master's persistence: batches stored before they are confirmed, replay at start, completions, dead letters taken back. */
#include "master.h"
#include "journal.h"
#include "log.h"
#include "store.h"

#include <stdlib.h>

#include <event2/event.h>

/* Completions are flushed to the store this often, or at this count. */
#define JOURNAL_FLUSH_MS 100
#define JOURNAL_FLUSH_COUNT 512
/* While a batch cannot be written (disk full), retry this often. */
#define JOURNAL_RETRY_MS 1000

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
	if (store_done_pending(m->store) > 0 && store_flush(m->store) != 0)
		log_warn("journal: flushing completions: %s", store_errmsg(m->store));
	evtimer_add(m->journal_ev, &tv);
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
		if (r->nbad == r->capbad) {
			size_t cap = r->capbad ? r->capbad * 2 : 16;
			int64_t *n = realloc(r->bad, cap * sizeof(*n));

			if (n == NULL)
				fatalx("out of memory");
			r->bad = n;
			r->capbad = cap;
		}
		r->bad[r->nbad++] = id;
		return 0;
	}
	if (u != NULL) {
		u->journaled = 1;
		if (master_offset_after(id) > m->next_offset)
			m->next_offset = master_offset_after(id);
	}
	return 0;
}

int master_store_open(struct master *m)
{
	struct timeval tv = { 0, JOURNAL_FLUSH_MS * 1000 };
	char err[512];
	int64_t off = 0;

	if (!m->cfg->journal_enabled) {
		log_notice("journal disabled: updates in flight are lost if the master "
		    "dies (at-most-once)");
		return 0;
	}
	m->store = journal_store(journal_open(m->cfg->journal_path, m->cfg->journal_sync,
	    err, sizeof(err)));
	if (m->store == NULL) {
		log_err("%s", err);
		return -1;
	}
	struct replay r = { m, NULL, 0, 0 };

	if (store_offset(m->store, &off) != 0 ||
	    store_replay(m->store, replay_one, &r) != 0) {
		log_err("journal %s: %s", m->cfg->journal_path, store_errmsg(m->store));
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
	m->journal_ev = evtimer_new(m->base, on_journal_timer, m);
	if (m->journal_ev == NULL || evtimer_add(m->journal_ev, &tv) != 0)
		fatalx("cannot start the journal timer");
	return 0;
}

void master_store_done(struct master *m, int64_t id)
{
	if (m->store == NULL)
		return;
	if (store_done(m->store, id) != 0)
		log_warn("journal: cannot queue the completion of update %lld: %s",
		    (long long)id, store_errmsg(m->store));
	if (store_done_pending(m->store) >= JOURNAL_FLUSH_COUNT &&
	    store_flush(m->store) != 0)
		log_warn("journal: flushing completions: %s", store_errmsg(m->store));
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
