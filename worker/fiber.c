/* Fibers: a register-only switch (x86-64; ucontext elsewhere) on mmap'd stacks above a guard region, pooled. */
#include "fiber.h"
#include "log.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/queue.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define FIBER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FIBER_ASAN 1
#endif
#endif

/*
 * x86-64 switches with fiber_switch_x86_64.S: no system call per switch.
 * Elsewhere, or with -DTGRUN_FIBER_UCONTEXT, ucontext does it.
 */
#if defined(__x86_64__) && !defined(TGRUN_FIBER_UCONTEXT)
#define FIBER_ASM 1
void fiber_ctx_switch(void **save_sp, void *next_sp);
#endif

#ifdef FIBER_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom,
    size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save,
    const void **bottom_old, size_t *size_old);
#endif

/* Bytes at the top of a recycled stack left resident: they are touched first. */
#define FIBER_HOT_BYTES (16 * 1024)
/*
 * Idle stacks kept as they are; past this many, a stack put back gives its
 * pages to the kernel (madvise), so a burst's stacks do not stay resident
 * while steady traffic makes no system call per update.
 */
#define FIBER_WARM 64
/*
 * Inaccessible bytes below each stack. Code built without
 * -fstack-clash-protection allocates a large frame in one step and may
 * write its far end first: a frame larger than the guard then steps over
 * it into whatever lies below. 64 KiB is far more than a handler's frame
 * should be. It costs address space only: never accessible, the guard is
 * neither committed nor resident memory.
 */
#define FIBER_GUARD (64 * 1024)

struct stack {
	SLIST_ENTRY(stack) link;	/* in the pool's warm or cold list while idle */
	char *map;		/* the guard region, then the usable stack */
	size_t map_len;
};

SLIST_HEAD(stack_list, stack);

struct fiber_pool {
	size_t stack_size;	/* usable bytes, page multiple */
	size_t guard;		/* FIBER_GUARD, page multiple */
	size_t page;
	size_t keep;
	/* Idle stacks: warm ones keep their pages, cold ones gave them back. */
	struct stack_list warm, cold;
	size_t nwarm, nfree, nused;
};

struct fiber {
#ifdef FIBER_ASM
	void *sp;		/* saved stack pointer while switched out */
#else
	ucontext_t ctx;
#endif
	struct fiber_pool *pool;
	struct stack *stack;
	fiber_fn fn;
	void *arg;
	int finished;
#ifdef FIBER_ASAN
	void *fake_stack;
#endif
};

/* Per process: workers are single-threaded. */
#ifdef FIBER_ASM
static void *sched_sp;
#else
static ucontext_t sched_ctx;
#endif
static struct fiber *running;
#ifdef FIBER_ASAN
static const void *sched_stack_bottom;
static size_t sched_stack_size;
#endif

struct fiber_pool *fiber_pool_new(size_t stack_size, size_t keep)
{
	struct fiber_pool *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->page = (size_t)sysconf(_SC_PAGESIZE);
	p->stack_size = (stack_size + p->page - 1) / p->page * p->page;
	if (p->stack_size < 4 * p->page)
		p->stack_size = 4 * p->page;
	p->guard = (FIBER_GUARD + p->page - 1) / p->page * p->page;
	p->keep = keep;
	SLIST_INIT(&p->warm);
	SLIST_INIT(&p->cold);
	return p;
}

static void stacks_unmap(struct stack_list *l)
{
	struct stack *s;

	while ((s = SLIST_FIRST(l)) != NULL) {
		SLIST_REMOVE_HEAD(l, link);
		munmap(s->map, s->map_len);
		free(s);
	}
}

void fiber_pool_free(struct fiber_pool *p)
{
	if (p == NULL)
		return;
	stacks_unmap(&p->warm);
	stacks_unmap(&p->cold);
	free(p);
}

size_t fiber_pool_stack_size(const struct fiber_pool *p) { return p->stack_size; }
size_t fiber_pool_in_use(const struct fiber_pool *p) { return p->nused; }
size_t fiber_pool_idle(const struct fiber_pool *p) { return p->nfree; }

static struct stack *stack_get(struct fiber_pool *p)
{
	struct stack *s;

	if ((s = SLIST_FIRST(&p->warm)) != NULL) {
		SLIST_REMOVE_HEAD(&p->warm, link);
		p->nwarm--;
	} else if ((s = SLIST_FIRST(&p->cold)) != NULL) {
		SLIST_REMOVE_HEAD(&p->cold, link);
	}
	if (s != NULL) {
		p->nfree--;
		p->nused++;
		return s;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->map_len = p->guard + p->stack_size;
	/*
	 * Stacks grow down: the guard is the lowest part. Mapped inaccessible
	 * as a whole, then the stack above the guard opened, so the guard is
	 * never writable and never charged as committed memory.
	 */
	s->map = mmap(NULL, s->map_len, PROT_NONE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (s->map == MAP_FAILED) {
		log_err("fiber: mmap(%zu bytes): %s", s->map_len, strerror(errno));
		free(s);
		return NULL;
	}
	if (mprotect(s->map + p->guard, p->stack_size, PROT_READ | PROT_WRITE) != 0) {
		log_err("fiber: mprotect(stack of %zu bytes): %s", p->stack_size,
		    strerror(errno));
		munmap(s->map, s->map_len);
		free(s);
		return NULL;
	}
	p->nused++;
	return s;
}

static void stack_put(struct fiber_pool *p, struct stack *s)
{
	p->nused--;
	if (p->nfree >= p->keep) {
		munmap(s->map, s->map_len);
		free(s);
		return;
	}
	p->nfree++;
	if (p->nwarm < FIBER_WARM) {
		SLIST_INSERT_HEAD(&p->warm, s, link);
		p->nwarm++;
		return;
	}
	/* Give the pages back but keep the mapping (and its guard region). */
	if (p->stack_size > FIBER_HOT_BYTES)
		madvise(s->map + p->guard, p->stack_size - FIBER_HOT_BYTES, MADV_DONTNEED);
	SLIST_INSERT_HEAD(&p->cold, s, link);
}

/* The first code a fiber runs, on its own stack; it never returns. */
static void fiber_run(struct fiber *f)
{
#ifdef FIBER_ASAN
	__sanitizer_finish_switch_fiber(NULL, &sched_stack_bottom, &sched_stack_size);
#endif
	f->fn(f->arg);
	f->finished = 1;
	running = NULL;
#ifdef FIBER_ASAN
	/* This stack is done: no fake stack to save. */
	__sanitizer_start_switch_fiber(NULL, sched_stack_bottom, sched_stack_size);
#endif
#ifdef FIBER_ASM
	fiber_ctx_switch(&f->sp, sched_sp);
#else
	setcontext(&sched_ctx);
#endif
	fatalx("a finished fiber was resumed");
}

#ifdef FIBER_ASM
/* fiber_ctx_switch() "returns" here the first time; fiber_resume() set `running`. */
static void fiber_entry(void)
{
	fiber_run(running);
}

/*
 * The stack as fiber_ctx_switch() leaves it, so that switching to it pops
 * zeroed registers and the current MXCSR and x87 control word, then returns
 * into fiber_entry with the alignment of a function just called.
 */
static void *initial_sp(char *top)
{
	uint64_t *sp = (uint64_t *)((uintptr_t)top & ~(uintptr_t)15);
	uint32_t mxcsr;
	uint16_t fpucw;

	*--sp = 0;				/* fiber_entry's return address: none */
	*--sp = (uint64_t)(uintptr_t)fiber_entry;
	for (int i = 0; i < 6; i++)
		*--sp = 0;			/* rbp rbx r12 r13 r14 r15 */
	__asm__ volatile ("stmxcsr %0" : "=m" (mxcsr));
	__asm__ volatile ("fnstcw %0" : "=m" (fpucw));
	*--sp = (uint64_t)mxcsr | (uint64_t)fpucw << 32;
	return sp;
}
#else
static void trampoline(unsigned int hi, unsigned int lo)
{
	fiber_run((struct fiber *)(((uintptr_t)hi << 32) | (uintptr_t)lo));
}
#endif

struct fiber *fiber_new(struct fiber_pool *p, fiber_fn fn, void *arg)
{
	/* volatile: getcontext() returns like setjmp() does. */
	struct fiber *volatile f = calloc(1, sizeof(*f));

	if (f == NULL)
		return NULL;
	f->pool = p;
	f->fn = fn;
	f->arg = arg;
	f->stack = stack_get(p);
	if (f->stack == NULL) {
		free(f);
		return NULL;
	}
#ifdef FIBER_ASM
	f->sp = initial_sp(f->stack->map + p->guard + p->stack_size);
#else
	if (getcontext(&f->ctx) != 0) {
		stack_put(p, f->stack);
		free(f);
		return NULL;
	}
	f->ctx.uc_stack.ss_sp = f->stack->map + p->guard;
	f->ctx.uc_stack.ss_size = p->stack_size;
	f->ctx.uc_link = NULL;
	makecontext(&f->ctx, (void (*)(void))trampoline, 2,
	    (unsigned int)((uintptr_t)f >> 32), (unsigned int)((uintptr_t)f & 0xffffffffu));
#endif
	return f;
}

void fiber_free(struct fiber *f)
{
	if (f == NULL)
		return;
	if (f == running)
		fatalx("freeing the running fiber");
	stack_put(f->pool, f->stack);
	free(f);
}

int fiber_resume(struct fiber *f)
{
	if (running != NULL)
		fatalx("fiber_resume called inside a fiber");
	if (f->finished)
		return 1;
	running = f;
#ifdef FIBER_ASAN
	void *fake = NULL;

	__sanitizer_start_switch_fiber(&fake, f->stack->map + f->pool->guard,
	    f->pool->stack_size);
#endif
#ifdef FIBER_ASM
	fiber_ctx_switch(&sched_sp, f->sp);
#else
	swapcontext(&sched_ctx, &f->ctx);
#endif
#ifdef FIBER_ASAN
	__sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
	running = NULL;
	return f->finished;
}

void fiber_yield(void)
{
	struct fiber *f = running;

	if (f == NULL)
		fatalx("fiber_yield called outside a fiber");
#ifdef FIBER_ASAN
	__sanitizer_start_switch_fiber(&f->fake_stack, sched_stack_bottom,
	    sched_stack_size);
#endif
#ifdef FIBER_ASM
	fiber_ctx_switch(&f->sp, sched_sp);
#else
	swapcontext(&f->ctx, &sched_ctx);
#endif
#ifdef FIBER_ASAN
	__sanitizer_finish_switch_fiber(f->fake_stack, &sched_stack_bottom,
	    &sched_stack_size);
#endif
}

struct fiber *fiber_current(void)
{
	return running;
}

int fiber_addr_in_guard(const void *addr)
{
	const char *a = addr;
	struct fiber *f = running;

	if (f == NULL)
		return 0;
	/* A frame larger than the guard can skip it; count a little below too. */
	return a >= f->stack->map - f->pool->page && a < f->stack->map + f->pool->guard;
}

static char overflow_msg[256];
static size_t overflow_len;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	if (overflow_len > 0 && fiber_addr_in_guard(si->si_addr) &&
	    write(STDERR_FILENO, overflow_msg, overflow_len) < 0) {
		/* nothing more to do */
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

int fiber_report_overflow(const char *msg)
{
	static char altstack[64 * 1024];
	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof(altstack) };
	struct sigaction sa;

	/* The handler cannot format: the message is ready before any fault. */
	overflow_len = strlen(msg) < sizeof(overflow_msg) ? strlen(msg) :
	    sizeof(overflow_msg) - 1;
	memcpy(overflow_msg, msg, overflow_len);
	/* An overflow leaves no stack to handle it on. */
	if (sigaltstack(&ss, NULL) != 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, NULL) != 0 || sigaction(SIGBUS, &sa, NULL) != 0)
		return -1;
	return 0;
}
