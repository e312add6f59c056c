/* Context switch for AArch64 (AAPCS64), used by src/coro_ctx.h.
 *
 * void mo__ctx_swap(struct mo__ctx *from, struct mo__ctx *to)
 *   x0 = from, x1 = to; the saved stack pointer is the struct's first member.
 *
 * Saves only what a callee must preserve: x19-x28, the frame pointer x29,
 * the link register x30 and the low halves of v8-v15 (d8-d15), and the
 * floating-point control register FPCR (rounding mode, flush-to-zero), which
 * belongs to the context that set it as the MXCSR does on x86-64. The frame
 * on the suspended stack, from the saved sp upwards (176 bytes):
 *   +0 d8 d9, +16 d10 d11, +32 d12 d13, +48 d14 d15,
 *   +64 x19 x20, +80 x21 x22, +96 x23 x24, +112 x25 x26, +128 x27 x28,
 *   +144 x29 x30, +160 fpcr, +168 unused (sp stays 16-byte aligned)
 * coro_ctx.c builds the same frame for a new context, with x30 pointing at
 * mo__ctx_boot, x19 = argument, x20 = function and the creator's FPCR.
 */
/* Built with -DMO_CTX_UCONTEXT, the portable switch in coro_ctx.c is used. */
#ifndef MO_CTX_UCONTEXT

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
#define MO_BTI_C bti c
#else
#define MO_BTI_C
#endif

    .text
    .globl  mo__ctx_swap
    .hidden mo__ctx_swap
    .type   mo__ctx_swap, %function
    .p2align 4
mo__ctx_swap:
    .cfi_startproc
    MO_BTI_C
    sub     sp, sp, #176
    stp     d8, d9, [sp, #0]
    stp     d10, d11, [sp, #16]
    stp     d12, d13, [sp, #32]
    stp     d14, d15, [sp, #48]
    stp     x19, x20, [sp, #64]
    stp     x21, x22, [sp, #80]
    stp     x23, x24, [sp, #96]
    stp     x25, x26, [sp, #112]
    stp     x27, x28, [sp, #128]
    stp     x29, x30, [sp, #144]
    mrs     x9, fpcr
    str     x9, [sp, #160]
    mov     x9, sp
    str     x9, [x0]
    ldr     x9, [x1]
    mov     sp, x9
    ldp     d8, d9, [sp, #0]
    ldp     d10, d11, [sp, #16]
    ldp     d12, d13, [sp, #32]
    ldp     d14, d15, [sp, #48]
    ldp     x19, x20, [sp, #64]
    ldp     x21, x22, [sp, #80]
    ldp     x23, x24, [sp, #96]
    ldp     x25, x26, [sp, #112]
    ldp     x27, x28, [sp, #128]
    ldp     x29, x30, [sp, #144]
    /* Writing FPCR can stall the pipeline: only when it differs. */
    ldr     x9, [sp, #160]
    mrs     x10, fpcr
    cmp     x9, x10
    b.eq    1f
    msr     fpcr, x9
1:
    add     sp, sp, #176
    ret
    .cfi_endproc
    .size   mo__ctx_swap, .-mo__ctx_swap

/* The first code a new context runs (reached by mo__ctx_swap's ret through
 * x30): x19 = argument, x20 = function. The function never returns; if it
 * did, trap. x30 is marked undefined so unwinders stop here. */
    .globl  mo__ctx_boot
    .hidden mo__ctx_boot
    .type   mo__ctx_boot, %function
    .p2align 4
mo__ctx_boot:
    .cfi_startproc
    .cfi_undefined x30
    MO_BTI_C
    mov     x0, x19
    blr     x20
    brk     #0x3e8
    .cfi_endproc
    .size   mo__ctx_boot, .-mo__ctx_boot

#endif /* MO_CTX_UCONTEXT */

    .section .note.GNU-stack, "", %progbits
