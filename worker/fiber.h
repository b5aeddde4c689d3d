/* Fibers: switching between mmap'd stacks above a guard region, pooled. */
#ifndef TGRUN_FIBER_H
#define TGRUN_FIBER_H

#include <stddef.h>

struct fiber;
struct fiber_pool;

typedef void (*fiber_fn)(void *arg);

/*
 * A pool of stacks of `stack_size` bytes (rounded up to pages), each above
 * a 64 KiB PROT_NONE guard region (address space, not memory); up to `keep`
 * free stacks are kept for reuse, trimmed with MADV_DONTNEED.
 */
struct fiber_pool *fiber_pool_new(size_t stack_size, size_t keep);
void fiber_pool_free(struct fiber_pool *p);
size_t fiber_pool_stack_size(const struct fiber_pool *p);

/* A new fiber that will run fn(arg) when first resumed. NULL if out of memory. */
struct fiber *fiber_new(struct fiber_pool *p, fiber_fn fn, void *arg);
/* Free a finished (or never started) fiber; its stack goes back to the pool. */
void fiber_free(struct fiber *f);

/*
 * Called on the scheduler's stack: run `f` until it yields or returns.
 * Returns 1 when fn returned (the fiber is finished), 0 when it yielded.
 */
int fiber_resume(struct fiber *f);
/* Called in a fiber: switch back to the scheduler. */
void fiber_yield(void);
/* The running fiber, NULL on the scheduler's stack. */
struct fiber *fiber_current(void);

/* 1 when `addr` lies in the guard region of the running fiber's stack. */
int fiber_addr_in_guard(const void *addr);
/*
 * From now on a SIGSEGV or SIGBUS at an address in the running fiber's
 * guard region writes `msg` (copied; up to 255 bytes) to stderr, then the
 * signal kills the process as it would have; other faults are not touched.
 * The handler runs on an alternate signal stack. 0, or -1 with errno.
 */
int fiber_report_overflow(const char *msg) __attribute__((warn_unused_result));

/* Stacks in use and free in the pool, for introspection and tests. */
size_t fiber_pool_in_use(const struct fiber_pool *p);
size_t fiber_pool_idle(const struct fiber_pool *p);

#endif
