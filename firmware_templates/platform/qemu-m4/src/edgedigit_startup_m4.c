/* edgedigit: start-up code of the `qemu-m4` board (Cortex-M4F, QEMU mps2-an386). Hand-written.
 *
 * Vector table, reset handler (copy .data, zero .bss, enable the FPU), default fault handler.
 * No CMSIS, no C library start-up files.
 */
#include <stdint.h>

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
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
    uint32_t *src = &__data_load;
    for (uint32_t *dst = &__data_start; dst < &__data_end;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &__bss_start; dst < &__bss_end;) {
        *dst++ = 0u;
    }
    (void)main();
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
