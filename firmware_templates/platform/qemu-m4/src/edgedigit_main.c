/* edgedigit: main of the `qemu-m4` board. Hand-written. Platform init, model init, protocol init, loop. */
#include "edgedigit_model.h"
#include "edgedigit_platform.h"
#include "edgedigit_platform_qemu_m4.h"
#include "edgedigit_protocol.h"

int main(void) {
    edgedigit_platform_init();
    if (edgedigit_model_init() != 0) {
        static const char msg[] = "e-[model init failed]\r\n";
        edgedigit_platform_write(msg, sizeof(msg) - 1u);
    }
    edgedigit_protocol_init();
    for (;;) {
        edgedigit_protocol_poll();
        edgedigit_qemu_m4_wait_input();
    }
}
