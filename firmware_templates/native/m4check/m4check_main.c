/* edgedigit: bare-metal check harness of the native backend on a Cortex-M4 (QEMU mps2-an386). Hand-written.
 *
 * Runs the generated graph on the int8 inputs of m4check_data.h (built with the ARMv7E-M DSP path), prints
 * each output as one hex line over semihosting, then the SysTick ticks spent inside edgedigit_native_run();
 * under `qemu-system-arm -icount shift=0` one tick is 40 emulated instructions (not cycles of a real chip).
 * Not part of any firmware: used by edgedigit.native.run_qemu_m4 (tests and benchmarks).
 */
#include <stdint.h>
#include <string.h>

#include "edgedigit_native_model.h"
#include "m4check_data.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define CPACR (*(volatile uint32_t *)0xE000ED88u)

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
int main(void);
void m4check_reset(void);

static int semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static void put(const char *s)
{
    semihost(0x04, s); /* SYS_WRITE0 */
}

static char *hex_u32(char *p, uint32_t v)
{
    int i;
    for (i = 28; i >= 0; i -= 4) {
        *p++ = "0123456789abcdef"[(v >> i) & 0xFu];
    }
    return p;
}

static char g_line[2 * EDGEDIGIT_NATIVE_OUTPUT_BYTES + 16];

int main(void)
{
    uint32_t ticks = 0;
    uint32_t i;
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 5u; /* enable, processor clock, no interrupt */
    for (i = 0; i < M4CHECK_COUNT; ++i) {
        uint32_t t0, t1, k;
        char *p = g_line;
        memcpy(edgedigit_native_input(), g_m4check_inputs + i * EDGEDIGIT_NATIVE_INPUT_BYTES,
               EDGEDIGIT_NATIVE_INPUT_BYTES);
        t0 = SYST_CVR;
        if (edgedigit_native_run() != 0) {
            put("error\n");
        }
        t1 = SYST_CVR;
        ticks += (t0 - t1) & 0xFFFFFFu; /* SysTick counts down */
        for (k = 0; k < EDGEDIGIT_NATIVE_OUTPUT_BYTES; ++k) {
            const uint8_t b = (uint8_t)edgedigit_native_output()[k];
            *p++ = "0123456789abcdef"[b >> 4];
            *p++ = "0123456789abcdef"[b & 0xFu];
        }
        *p++ = '\n';
        *p = 0;
        put(g_line);
    }
    {
        char *p = g_line;
        memcpy(p, "ticks ", 6);
        p = hex_u32(p + 6, ticks);
        *p++ = '\n';
        *p = 0;
        put(g_line);
    }
    semihost(0x18, (const void *)0x20026u); /* SYS_EXIT, ADP_Stopped_ApplicationExit */
    return 0;
}

void m4check_reset(void)
{
    uint32_t *src = &__data_load;
    uint32_t *dst;
    CPACR |= (0xFu << 20); /* FPU on (the code is built for the hard-float ABI) */
    for (dst = &__data_start; dst < &__data_end;) {
        *dst++ = *src++;
    }
    for (dst = &__bss_start; dst < &__bss_end;) {
        *dst++ = 0u;
    }
    (void)main();
    for (;;) {
    }
}

typedef void (*m4check_vector_t)(void);

__attribute__((section(".vectors"), used)) static const m4check_vector_t g_vectors[2] = {
    (m4check_vector_t)(uintptr_t)&__stack_top,
    m4check_reset,
};
