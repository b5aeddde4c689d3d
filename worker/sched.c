/* The worker's scheduler: tasks on fibers, parked and woken only through its run queue. */
#include "sched.h"
#include "clock.h"
#include "fiber.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>

struct task {
	struct sched *s;
	struct fiber *f;
	task_fn fn, done;
	void *arg, *done_arg, *data;
	int queued, parked, cancelled, wake_status, nocancel;
	task_abort_fn abort;
	void *wait_obj;
	const char *what;
	int64_t since_ms;
	struct event *timer;
	STAILQ_ENTRY(task) run;		/* in the run queue while `queued` */
	LIST_ENTRY(task) all;		/* live tasks */
};

struct deferred {
	STAILQ_ENTRY(deferred) link;
	sched_deferred_fn fn;
	void *arg;
};

struct sched {
	struct event_base *base;
	struct fiber_pool *pool;
	STAILQ_HEAD(, task) runq;
	STAILQ_HEAD(, deferred) deferred;
	LIST_HEAD(, task) all;
	int count;
};

static struct task *current;


struct sched *sched_new(struct event_base *base, struct fiber_pool *pool)
{
	struct sched *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->base = base;
	s->pool = pool;
	STAILQ_INIT(&s->runq);
	STAILQ_INIT(&s->deferred);
	LIST_INIT(&s->all);
	return s;
}

void sched_free(struct sched *s)
{
	struct deferred *d;

	if (s == NULL)
		return;
	while ((d = STAILQ_FIRST(&s->deferred)) != NULL) {
		STAILQ_REMOVE_HEAD(&s->deferred, link);
		free(d);
	}
	free(s);
}

struct event_base *sched_base(struct sched *s) { return s->base; }
struct task *sched_current(void) { return current; }
void *task_data(struct task *t) { return t->data; }
void task_set_data(struct task *t, void *data) { t->data = data; }
int task_cancelled(const struct task *t) { return t->cancelled; }
int sched_count(const struct sched *s) { return s->count; }

static void enqueue(struct task *t)
{
	if (t->queued)
		return;
	t->queued = 1;
	STAILQ_INSERT_TAIL(&t->s->runq, t, run);
}

static void entry(void *arg)
{
	struct task *t = arg;

	t->fn(t, t->arg);
}

struct task *sched_spawn(struct sched *s, task_fn fn, void *arg,
    task_fn done, void *done_arg)
{
	struct task *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->s = s;
	t->fn = fn;
	t->arg = arg;
	t->done = done;
	t->done_arg = done_arg;
	t->f = fiber_new(s->pool, entry, t);
	if (t->f == NULL) {
		free(t);
		return NULL;
	}
	LIST_INSERT_HEAD(&s->all, t, all);
	s->count++;
	t->since_ms = clock_ms();
	t->what = "start";
	enqueue(t);
	return t;
}

static void task_free(struct task *t)
{
	LIST_REMOVE(t, all);
	t->s->count--;
	if (t->timer)
		event_free(t->timer);
	fiber_free(t->f);
	free(t);
}

/* Wake a parked task with `status`, after undoing its wait when it did not complete. */
static void wake_with(struct task *t, int status)
{
	if (!t->parked)
		return;
	if (status != 0 && t->abort != NULL)
		t->abort(t, t->wait_obj);
	t->parked = 0;
	t->abort = NULL;
	t->wait_obj = NULL;
	t->wake_status = status;
	if (t->timer)
		evtimer_del(t->timer);
	enqueue(t);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	wake_with(arg, ETIMEDOUT);
}

int sched_park(const char *what, task_abort_fn abort, void *obj, int64_t timeout_ms)
{
	struct task *t = current;

	if (t == NULL) {
		errno = EPERM;
		return EPERM;
	}
	if (t->cancelled) {
		if (abort != NULL)
			abort(t, obj);
		return ECANCELED;
	}
	t->parked = 1;
	t->abort = abort;
	t->wait_obj = obj;
	t->what = what;
	t->since_ms = clock_ms();
	if (timeout_ms >= 0) {
		struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };

		if (t->timer == NULL)
			t->timer = evtimer_new(t->s->base, on_timeout, t);
		if (t->timer == NULL || evtimer_add(t->timer, &tv) != 0)
			fatalx("cannot arm a task timer");
	}
	fiber_yield();
	t->what = "running";
	t->since_ms = clock_ms();
	return t->wake_status;
}

int sched_park_nocancel(const char *what, int64_t timeout_ms)
{
	struct task *t = current;
	int cancelled, st;

	if (t == NULL)
		return EPERM;
	cancelled = t->cancelled;
	t->cancelled = 0;
	t->nocancel = 1;
	st = sched_park(what, NULL, NULL, timeout_ms);
	t->nocancel = 0;
	t->cancelled |= cancelled;
	return st;
}

void sched_wake(struct task *t)
{
	wake_with(t, 0);
}

static void cancel_now(void *arg)
{
	wake_with(arg, ECANCELED);
}

void sched_cancel(struct task *t)
{
	t->cancelled = 1;
	if (!t->parked || t->nocancel)
		return;
	/* Aborting a wait may call into libcurl: do it on the scheduler's stack. */
	if (current != NULL) {
		if (sched_defer(t->s, cancel_now, t) != 0)
			fatalx("out of memory cancelling a task");
		return;
	}
	wake_with(t, ECANCELED);
}

int sched_defer(struct sched *s, sched_deferred_fn fn, void *arg)
{
	struct deferred *d = malloc(sizeof(*d));

	if (d == NULL)
		return -1;
	d->fn = fn;
	d->arg = arg;
	STAILQ_INSERT_TAIL(&s->deferred, d, link);
	return 0;
}

static void run_deferred(struct sched *s)
{
	struct deferred *d;

	while ((d = STAILQ_FIRST(&s->deferred)) != NULL) {
		STAILQ_REMOVE_HEAD(&s->deferred, link);
		d->fn(d->arg);
		free(d);
	}
}

int sched_run(struct sched *s)
{
	int n = 0;
	struct task *t;

	run_deferred(s);
	while ((t = STAILQ_FIRST(&s->runq)) != NULL) {
		STAILQ_REMOVE_HEAD(&s->runq, run);
		t->queued = 0;
		current = t;
		n++;
		if (fiber_resume(t->f)) {
			current = NULL;
			if (t->done)
				t->done(t, t->done_arg);
			task_free(t);
		}
		current = NULL;
		run_deferred(s);
	}
	return n;
}

int sched_pending(const struct sched *s)
{
	return !STAILQ_EMPTY(&s->runq) || !STAILQ_EMPTY(&s->deferred);
}

void sched_dump(const struct sched *s, sched_dump_fn fn, void *arg)
{
	int64_t now = clock_ms();
	const struct task *t;

	LIST_FOREACH(t, &s->all, all)
		fn(arg, t, t->parked ? t->what : (t->queued ? "queued" : "running"),
		    now - t->since_ms);
}
