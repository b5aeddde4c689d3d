/* A worker whose master died: it finishes its running updates within a bound, records them in the done log, exits. */
#include "clock.h"
#include "donelog.h"
#include "frame.h"
#include "log.h"
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <event2/event.h>

/*
 * Ids of the last DONE frames queued to the master. When it dies it may not
 * have read them yet (they sit in this worker's buffer, the socket, or its
 * own); recording them again costs nothing, forgetting them a re-run.
 */
#define RING 4096

struct orphan {
	int64_t finish_ms;	/* the running updates may take this long */
	int64_t grace_ms;	/* then, once cancelled, this long */
	int64_t ring[RING];
	size_t next, n;
	struct event *ev;	/* the finish window, then the grace */
	int cancelled;		/* the finish window is over */
	size_t recorded;	/* updates recorded since the master died */
};

/*
 * For on_hangup(), which can reach nothing else: set in orphan_setup()
 * before the handler is installed.
 */
static pid_t master_pid;
static unsigned limit_s;
static volatile sig_atomic_t limit_armed;

/*
 * The kernel's word that the master died (PR_SET_PDEATHSIG), which comes
 * even while a handler spins or blocks and this worker would never see its
 * socket close. It only arms alarm(): SIGALRM's default action ends the
 * process at the limit, whatever it runs, so an orphan never lingers and the
 * next master's wait for the done log's lock ends. A SIGHUP from anyone else
 * while the master lives is ignored, as it was before.
 */
static void on_hangup(int sig)
{
	int e = errno;

	if (!limit_armed && getppid() != master_pid) {
		limit_armed = 1;
		alarm(limit_s);
	}
	errno = e;
}

static void record(int64_t id)
{
	if (donelog_append(DONELOG_FD, &id, 1) != 0)
		log_warn("update %lld: write(done log): %s; the next master runs it again",
		    (long long)id, strerror(errno));
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct orphan *o = w->orphan;
	struct timeval tv = { o->grace_ms / 1000, (o->grace_ms % 1000) * 1000 };
	size_t it = 0;
	uint64_t id;
	void *u;

	if (o->cancelled) {
		log_err("master gone: %d updates did not end within kill_grace of their "
		    "cancel; exiting", w->running);
		_exit(WORKER_EXIT_FAILED);
	}
	o->cancelled = 1;
	log_warn("master gone: cancelling %d updates still running after %lld ms; "
	    "the next master runs them again", w->running, (long long)o->finish_ms);
	while (u64map_next(&w->updates, &it, &id, &u))
		ctx_cancel_update(w, u);
	evtimer_add(o->ev, &tv);
}

int orphan_setup(struct worker *w, const json_t *settings, char *err, size_t errlen)
{
	json_int_t fin = json_integer_value(json_object_get(settings, "orphan_ms"));
	json_int_t grace = json_integer_value(json_object_get(settings, "orphan_grace_ms"));
	struct sigaction sa;
	struct orphan *o;

	if (!json_is_true(json_object_get(settings, "done_log")))
		return 0;	/* no journal: PR_SET_PDEATHSIG SIGKILL stays */
	if (fcntl(DONELOG_FD, F_GETFD) < 0 || fin < 0 || grace < 0) {
		snprintf(err, errlen, "the done log is not on fd %d, or bad orphan "
		    "limits in the CONFIG frame", DONELOG_FD);
		return -1;
	}
	if ((o = calloc(1, sizeof(*o))) == NULL ||
	    (o->ev = evtimer_new(w->base, on_timer, w)) == NULL) {
		free(o);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	o->finish_ms = fin;
	o->grace_ms = grace;
	w->orphan = o;
	/* A handler's child process must not keep the lock after this worker. */
	(void)fcntl(DONELOG_FD, F_SETFD, FD_CLOEXEC);
	/* Until the prctl below, the master's death is still a SIGKILL. */
	master_pid = getppid();
	limit_s = (unsigned)((donelog_orphan_limit_ms(fin, grace) + 999) / 1000);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_hangup;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGHUP, &sa, NULL) != 0 || prctl(PR_SET_PDEATHSIG, SIGHUP) != 0) {
		snprintf(err, errlen, "cannot watch for the master's death: %s",
		    strerror(errno));
		return -1;
	}
	return 0;
}

void orphan_note_done(struct worker *w, int64_t id, int status)
{
	struct orphan *o = w->orphan;

	/*
	 * Only what is done: a failed update is retried, and one cancelled by a
	 * stop stays journaled; the next master decides.
	 */
	if (o == NULL || status != FRAME_ST_OK)
		return;
	if (w->orphaned) {
		record(id);
		o->recorded++;
		return;
	}
	o->ring[o->next] = id;
	o->next = (o->next + 1) % RING;
	if (o->n < RING)
		o->n++;
}

int orphan_begin(struct worker *w)
{
	struct orphan *o = w->orphan;
	int full = o != NULL && o->n == RING, rc;
	struct timeval tv;

	if (o == NULL)
		return 0;
	if (w->orphaned)
		return 1;
	w->orphaned = 1;
	if (!limit_armed) {
		limit_armed = 1;
		alarm(limit_s);
	}
	/* Oldest first: once full, the ring wraps at `next`. */
	rc = donelog_append(DONELOG_FD, o->ring + (full ? o->next : 0),
	    full ? RING - o->next : o->n);
	if (rc == 0 && full)
		rc = donelog_append(DONELOG_FD, o->ring, o->next);
	if (rc != 0)
		log_warn("write(done log): %s; updates the master did not record may "
		    "run again", strerror(errno));
	log_notice("master gone: finishing %d running updates within %lld ms, "
	    "then exiting", w->running, (long long)o->finish_ms);
	tv = (struct timeval){ o->finish_ms / 1000, (o->finish_ms % 1000) * 1000 };
	evtimer_add(o->ev, &tv);
	return 1;
}

void orphan_end(struct worker *w)
{
	if (w->orphan != NULL && w->orphaned)
		log_notice("master gone: %zu updates finished and recorded in the done "
		    "log; exiting", w->orphan->recorded);
}
