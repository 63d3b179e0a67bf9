/* edgedigit: start-up code of the `qemu-m4` board (Cortex-M4F, QEMU mps2-an386). Hand-written.
 *
 * Vector table, reset handler (enable the FPU, paint the stack, copy .data, zero .bss, run C++ static
 * constructors), default fault handler, and the few C/C++ runtime hooks a bare-metal C++ runner (TFLM)
 * needs. No CMSIS, no C library start-up files.
 *
 * The stack is painted with EDGEDIGIT_STACK_PAINT from its bottom (__stack_start) up to just below the
 * reset handler's own frame, so the deepest use since reset can be read back from RAM: the host reads the
 * stack through the emulator and counts the words still painted (edgedigit.targets.devices.STACK_PAINT).
 */
#include <stdint.h>

#define EDGEDIGIT_STACK_PAINT 0xC5C5C5C5u

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_start, __stack_top;
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);
extern int main(void);
void edgedigit_reset_handler(void);
void edgedigit_systick_handler(void);
void edgedigit_uart0_rx_handler(void);

static void fault_handler(void) {
    for (;;) {
    }
}

static void ignore_handler(void) {}

#define CPACR (*(volatile uint32_t *)0xE000ED88u)

void edgedigit_reset_handler(void) {
    CPACR |= (0xFu << 20); /* CP10 and CP11 full access: the FPU */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (volatile uint32_t *p = &__stack_start; p < sp - 16;) { /* 64 B below this frame stay unpainted */
        *p++ = EDGEDIGIT_STACK_PAINT;
    }
    uint32_t *src = &__data_load;
    for (uint32_t *dst = &__data_start; dst < &__data_end;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &__bss_start; dst < &__bss_end;) {
        *dst++ = 0u;
    }
    for (void (**ctor)(void) = __init_array_start; ctor < __init_array_end; ++ctor) {
        (*ctor)();
    }
    (void)main();
    for (;;) {
    }
}

/* C++ runtime hooks. The firmware never returns from main, so static objects' destructors are never
 * registered (nothing would run them; newlib's __cxa_atexit would also need crtbegin's __dso_handle), and
 * abort() (TFLM's TFLITE_ABORT) ends the emulation through semihosting with exit code 134 instead of
 * newlib's abort, which pulls in signal handling and malloc. */
void *__dso_handle = 0;
int __aeabi_atexit(void *object, void (*destructor)(void *), void *dso);
int __cxa_atexit(void (*destructor)(void *), void *object, void *dso);
void abort(void) __attribute__((noreturn));

int __aeabi_atexit(void *object, void (*destructor)(void *), void *dso) {
    (void)object;
    (void)destructor;
    (void)dso;
    return 0;
}

int __cxa_atexit(void (*destructor)(void *), void *object, void *dso) {
    (void)destructor;
    (void)object;
    (void)dso;
    return 0;
}

void abort(void) {
    static const uint32_t block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, 134u};
    register uint32_t r0 __asm__("r0") = 0x20u; /* SYS_EXIT_EXTENDED */
    register const uint32_t *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
    for (;;) {
    }
}

typedef void (*vector_t)(void);

/* 16 system exceptions, then the external interrupts: IRQ0 is UART0 RX on mps2-an386. */
__attribute__((section(".vectors"), used)) static const vector_t g_vectors[16 + 2] = {
    (vector_t)(uintptr_t)&__stack_top,
    edgedigit_reset_handler,
    fault_handler, /* NMI */
    fault_handler, /* HardFault */
    fault_handler, /* MemManage */
    fault_handler, /* BusFault */
    fault_handler, /* UsageFault */
    0, 0, 0, 0,
    ignore_handler, /* SVCall */
    ignore_handler, /* DebugMon */
    0,
    ignore_handler, /* PendSV */
    edgedigit_systick_handler,
    edgedigit_uart0_rx_handler, /* IRQ0: UART0 RX */
    ignore_handler,             /* IRQ1: UART0 TX */
};
