/* edgedigit: esp_timer_get_time() outside ESP-IDF: always 0 (the kernels' self-timing is not used). */
#include "esp_timer.h"

int64_t esp_timer_get_time(void) { return 0; }
