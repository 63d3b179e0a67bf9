/* edgedigit: the platform layer of the `qemu-m4` board (Cortex-M4F, QEMU mps2-an386). Hand-written.
 *
 * Serial: the CMSDK APB UART0 at 0x40004000 (QEMU's first -serial). Time: SysTick on the 25 MHz system
 * clock with a wrap counter. QEMU runs with `-icount shift=0` (one virtual nanosecond per instruction),
 * so one SysTick tick is 40 emulated instructions and the counter reports emulated instructions
 * (in steps of 40): deterministic, but NOT cycles of a real chip.
 */
#include "edgedigit_platform.h"
#include "edgedigit_platform_qemu_m4.h"

#define UART0_DATA (*(volatile uint32_t *)0x40004000u)
#define UART0_STATE (*(volatile uint32_t *)0x40004004u)
#define UART0_CTRL (*(volatile uint32_t *)0x40004008u)
#define UART0_INTSTATUS (*(volatile uint32_t *)0x4000400Cu)
#define UART0_BAUDDIV (*(volatile uint32_t *)0x40004010u)
#define UART_STATE_TX_FULL 1u
#define UART_STATE_RX_FULL 2u
#define UART_CTRL_TX_EN 1u
#define UART_CTRL_RX_EN 2u
#define UART_CTRL_RX_INT_EN 8u
#define UART_INT_RX 2u

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define NVIC_ISER0 (*(volatile uint32_t *)0xE000E100u)

#define SYSCLK_HZ 25000000u
#define SYSTICK_RELOAD 0x00FFFFFFu
#define INSTRUCTIONS_PER_TICK 40u /* -icount shift=0: 1 instruction = 1 ns; 25 MHz: 1 tick = 40 ns */

static volatile uint32_t s_wraps;

void edgedigit_systick_handler(void) { s_wraps++; }

void edgedigit_uart0_rx_handler(void) {
    UART0_INTSTATUS = UART_INT_RX; /* only wakes the main loop; the byte stays in the UART */
}

void edgedigit_platform_init(void) {
    UART0_BAUDDIV = SYSCLK_HZ / 115200u;
    UART0_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN | UART_CTRL_RX_INT_EN;
    NVIC_ISER0 = 1u << 0; /* IRQ0: UART0 RX */
    SYST_RVR = SYSTICK_RELOAD;
    SYST_CVR = 0u;
    SYST_CSR = 7u; /* processor clock, interrupt on wrap, enabled */
}

int edgedigit_platform_read_char(void) {
    if ((UART0_STATE & UART_STATE_RX_FULL) == 0u) {
        return -1;
    }
    return (int)(UART0_DATA & 0xFFu);
}

void edgedigit_platform_write(const char *data, size_t len) {
    for (size_t i = 0; i < len; i++) {
        while ((UART0_STATE & UART_STATE_TX_FULL) != 0u) {
        }
        UART0_DATA = (uint32_t)(unsigned char)data[i];
    }
}

void edgedigit_qemu_m4_wait_input(void) {
    __asm__ volatile("cpsid i" ::: "memory");
    if ((UART0_STATE & UART_STATE_RX_FULL) == 0u) {
        __asm__ volatile("wfi" ::: "memory"); /* a pending interrupt wakes it even while masked */
    }
    __asm__ volatile("cpsie i" ::: "memory");
}

static uint64_t ticks(void) {
    uint32_t before, value, after;
    do {
        before = s_wraps;
        value = SYST_CVR;
        after = s_wraps;
    } while (before != after);
    return (uint64_t)before * (SYSTICK_RELOAD + 1u) + (SYSTICK_RELOAD - value);
}

uint32_t edgedigit_platform_micros(void) { return (uint32_t)(ticks() / (SYSCLK_HZ / 1000000u)); }

uint64_t edgedigit_platform_counter(void) { return ticks() * INSTRUCTIONS_PER_TICK; }

const char *edgedigit_platform_counter_unit(void) { return "instructions"; }

const char *edgedigit_platform_name(void) { return "qemu-m4"; }
