/* edgedigit: main of the `host` board. Hand-written. Platform init, model init, protocol init, loop. */
#include "edgedigit_model.h"
#include "edgedigit_platform.h"
#include "edgedigit_platform_host.h"
#include "edgedigit_protocol.h"

static void put(const char *s) {
    size_t n = 0;
    while (s[n] != '\0') {
        n++;
    }
    edgedigit_platform_write(s, n);
}

int main(void) {
    edgedigit_platform_init();
    (void)edgedigit_platform_micros(); /* start the clock at boot */
    if (edgedigit_model_init() != 0) {
        put("e-[model init failed]\r\n");
    }
    edgedigit_protocol_init();
    for (;;) {
        edgedigit_protocol_poll();
        edgedigit_host_wait_input(1000);
    }
}
