/* The master's side of status.h: snapshots and requests for the control socket and the metrics. */
#include "master.h"
#include "master_cluster.h"
#include "dispatch.h"
#include "store.h"
#include "log.h"
#include "status.h"

#include <stdlib.h>

_Static_assert(STATUS_ALL == STORE_ALL, "status.h and store.h mean the same by 'all'");

/* What the snapshot's pointers point into; rebuilt at every snapshot. */
struct status_buf {
	struct status_worker *workers;
	size_t cap;
	struct master_cluster_status cluster;
};

static void snapshot(void *arg, struct status *st)
{
	struct master *m = arg;
	struct status_buf *b = m->status_buf;
	size_t n = workers_count(m->pool);
	int ready;

	if (n > b->cap) {
		struct status_worker *sw = realloc(b->workers, n * sizeof(*sw));

		if (sw == NULL) {
			n = b->cap;	/* show fewer rather than none */
		} else {
			b->workers = sw;
			b->cap = n;
		}
	}
	*st = (struct status){
		.bot = m->cfg->name,
		.polling = master_polling_state(m),
		.generation = m->gen,
		.worker_count = m->cfg->worker_count,
		.inflight = master_inflight(m),
		.pending = master_pending(m),
		.fetched = m->n_fetched,
		.done = m->n_done,
		.failed = m->n_failed,
		.retried = m->n_retried,
		.dead_lettered = m->n_dead,
		.timed_out = dispatch_counts(m->dsp).timeouts,
		.dead_letters = m->store ? store_dead_count(m->store) : (int64_t)m->n_dead,
		.rate = m->rate,
		.last_poll_ok_ms = m->last_poll_ok_ms,
		.journal_enabled = m->store != NULL,
		.journal_path = m->cfg->journal_path,
		.journal_bytes = m->store ? store_size_bytes(m->store) : 0,
		.workers = b->workers,
	};
	st->nworkers = workers_rows(m->pool, b->workers, n, &ready);
	st->workers_ready = ready;
	if (m->mc != NULL) {
		master_cluster_status(m, &b->cluster);
		st->cluster = &b->cluster.st;
	}
}

static int reload(void *arg)
{
	return master_request_reload(arg);
}

static void pause_polling(void *arg, int paused)
{
	master_set_paused(arg, paused);
}

/* The store, or NULL with *err set. */
static struct store *store_of(struct master *m, const char **err)
{
	if (m->store == NULL)
		*err = "journal disabled";
	return m->store;
}

static int dead_list(void *arg, status_dead_fn fn, void *fnarg, const char **err)
{
	struct store *j = store_of(arg, err);

	if (j == NULL)
		return -1;
	if (store_dead_list(j, fn, fnarg) != 0) {
		*err = store_errmsg(j);
		return -1;
	}
	return 0;
}

static int dead_show(void *arg, int64_t id, status_dead_fn fn, void *fnarg,
    const char **err)
{
	struct store *j = store_of(arg, err);
	int n;

	if (j == NULL)
		return -1;
	if ((n = store_dead_get(j, id, fn, fnarg)) < 0)
		*err = store_errmsg(j);
	return n;
}

static int64_t dead_retry(void *arg, int64_t id, const char **err)
{
	struct master *m = arg;
	struct store *j = store_of(m, err);
	int64_t n;

	if (j == NULL)
		return -1;
	if (m->stopping) {
		*err = "the daemon is stopping";
		return -1;
	}
	if ((n = store_dead_retry(j, id)) < 0) {
		*err = store_errmsg(j);
		return -1;
	}
	if (n > 0 && master_take_journaled(m) < 0) {
		*err = "the dead letters are back in the journal but could not be "
		    "read; they run at the next start";
		return -1;
	}
	return n;
}

static int64_t dead_drop(void *arg, int64_t id, const char **err)
{
	struct store *j = store_of(arg, err);
	int64_t n;

	if (j == NULL)
		return -1;
	if ((n = store_dead_drop(j, id)) < 0)
		*err = store_errmsg(j);
	return n;
}

static int dump(void *arg, int slot, uint64_t req, pid_t *pid, const char **err)
{
	struct master *m = arg;
	struct wslot *w = workers_find_ready(m->pool, slot, pid);

	if (w == NULL) {
		*err = "fibers: no ready worker in that slot of the current generation";
		return -1;
	}
	if (workers_send_dump(w, req) != 0) {
		*err = "fibers: cannot send the request to the worker";
		return -1;
	}
	return 0;
}

int master_status_ops(struct master *m, struct status_ops *ops)
{
	if (m->status_buf == NULL && (m->status_buf = calloc(1, sizeof(*m->status_buf))) == NULL)
		return -1;
	*ops = (struct status_ops){
		.snapshot = snapshot, .reload = reload, .pause = pause_polling,
		.dead_list = dead_list, .dead_show = dead_show,
		.dead_retry = dead_retry, .dead_drop = dead_drop, .dump = dump,
		.arg = m,
	};
	return 0;
}

void master_status_free(struct master *m)
{
	if (m->status_buf != NULL)
		free(m->status_buf->workers);
	free(m->status_buf);
	m->status_buf = NULL;
}
