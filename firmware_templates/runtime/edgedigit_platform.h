/* edgedigit: the platform layer interface (serial and timers). Hand-written; one implementation per
 * platform (arduino/esp32, host, qemu-m4). Nothing here knows about the model or the protocol. */
#ifndef EDGEDIGIT_PLATFORM_H
#define EDGEDIGIT_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void edgedigit_platform_init(void);
/* Next received byte, or -1 when none is waiting (never blocks). */
int edgedigit_platform_read_char(void);
void edgedigit_platform_write(const char *data, size_t len);
/* Microseconds since boot (wraps). On emulated boards: derived from the emulated clock. */
uint32_t edgedigit_platform_micros(void);
/* A free-running counter for precise timing: CPU cycles on real chips (ESP32 CCOUNT, Cortex-M DWT),
 * emulated instructions on qemu-m4, nanoseconds on the host. Its unit is named below. */
uint64_t edgedigit_platform_counter(void);
const char *edgedigit_platform_counter_unit(void);
/* A short name of the platform, e.g. "esp32dev", "host", "qemu-m4". */
const char *edgedigit_platform_name(void);

#ifdef __cplusplus
}
#endif
#endif /* EDGEDIGIT_PLATFORM_H */
