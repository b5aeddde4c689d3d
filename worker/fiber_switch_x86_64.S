/*
 * The fiber context switch on x86-64 (System V): only what a function call
 * must preserve, and no system call (swapcontext() saves the signal mask with
 * one on every switch).
 *
 * void fiber_ctx_switch(void **save_sp, void *next_sp)
 *   pushes the callee-saved registers, MXCSR and the x87 control word on
 *   the current stack, stores the stack pointer in *save_sp, loads next_sp
 *   and pops the same set from there; `ret` then continues the other side.
 */
#if defined(__x86_64__) && !defined(TGRUN_FIBER_UCONTEXT)
	.text
	.globl	fiber_ctx_switch
	.hidden	fiber_ctx_switch
	.type	fiber_ctx_switch, @function
	.p2align 4
fiber_ctx_switch:
	.cfi_startproc
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	subq	$8, %rsp
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movq	%rsp, (%rdi)
	movq	%rsi, %rsp
	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	addq	$8, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.cfi_endproc
	.size	fiber_ctx_switch, .-fiber_ctx_switch
#endif
	.section .note.GNU-stack, "", @progbits
