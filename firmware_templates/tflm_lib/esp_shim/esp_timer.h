/* edgedigit: the one ESP-IDF function esp-tflite-micro's ESP-NN kernels call (to time themselves), for
 * builds outside ESP-IDF (host tests). Hand-written. */
#ifndef EDGEDIGIT_ESP_TIMER_SHIM_H
#define EDGEDIGIT_ESP_TIMER_SHIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

int64_t esp_timer_get_time(void);

#ifdef __cplusplus
}
#endif
#endif /* EDGEDIGIT_ESP_TIMER_SHIM_H */
