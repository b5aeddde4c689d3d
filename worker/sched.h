/* The worker's scheduler: tasks on fibers, parked and woken only through its run queue. */
#ifndef TGRUN_SCHED_H
#define TGRUN_SCHED_H

#include <stdint.h>

struct event_base;
struct fiber_pool;
struct sched;
struct task;

typedef void (*task_fn)(struct task *t, void *arg);
/* Undo what a parked task waits on (remove a transfer, an fd event, ...). */
typedef void (*task_abort_fn)(struct task *t, void *obj);
/* Runs on the scheduler's stack. */
typedef void (*sched_deferred_fn)(void *arg);

struct sched *sched_new(struct event_base *base, struct fiber_pool *pool);
void sched_free(struct sched *s);
struct event_base *sched_base(struct sched *s);

/*
 * A new task that runs fn(t, arg) on its own fiber; queued to run. `done`
 * runs on the scheduler's stack once fn has returned (the task is freed
 * right after it). NULL when out of memory.
 */
struct task *sched_spawn(struct sched *s, task_fn fn, void *arg,
    task_fn done, void *done_arg);

/* The task running now, NULL on the scheduler's stack. */
struct task *sched_current(void);
void *task_data(struct task *t);
void task_set_data(struct task *t, void *data);

/*
 * In a task: wait until sched_wake(). `what` describes the wait for dumps.
 * timeout_ms < 0 waits forever. Returns 0 when woken, ETIMEDOUT, or
 * ECANCELED (the task was cancelled before or during the wait). On timeout
 * and cancel, abort(t, obj) runs first: on the scheduler's stack, or on the
 * task's own when it was cancelled before parking (nothing is under way
 * then: work started for the wait is only deferred).
 */
int sched_park(const char *what, task_abort_fn abort, void *obj, int64_t timeout_ms);
/*
 * Like sched_park without abort, but cancellation does not end the wait:
 * for waiting on work that cancellation itself is winding down.
 */
int sched_park_nocancel(const char *what, int64_t timeout_ms);
/* Queue `t` to resume with status 0. Safe from any callback; never resumes it here. */
void sched_wake(struct task *t);
/* Mark `t` cancelled; if it is parked, abort its wait and wake it with ECANCELED. */
void sched_cancel(struct task *t);
int task_cancelled(const struct task *t);

/* Run fn(arg) on the scheduler's stack after the current task yields. */
int sched_defer(struct sched *s, sched_deferred_fn fn, void *arg)
	__attribute__((warn_unused_result));

/*
 * Resume queued tasks and run deferred calls until there is nothing left
 * to do now. Returns the number of tasks resumed.
 */
int sched_run(struct sched *s);
/* 1 when tasks are queued or calls deferred. */
int sched_pending(const struct sched *s);
/* Live tasks. */
int sched_count(const struct sched *s);

/* One line per task: what it waits on and for how long. */
typedef void (*sched_dump_fn)(void *arg, const struct task *t, const char *what,
    int64_t waited_ms);
void sched_dump(const struct sched *s, sched_dump_fn fn, void *arg);

#endif
