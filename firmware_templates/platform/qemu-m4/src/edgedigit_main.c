/* edgedigit: main of the `qemu-m4` board. Hand-written. Platform init, model init, protocol init, loop.
 * Nothing is written to the UART unasked (ed-info reports the model's init result). */
#include "edgedigit_model.h"
#include "edgedigit_platform.h"
#include "edgedigit_platform_qemu_m4.h"
#include "edgedigit_protocol.h"

int main(void) {
    edgedigit_platform_init();
    edgedigit_protocol_init(edgedigit_model_init());
    for (;;) {
        edgedigit_protocol_poll();
        edgedigit_qemu_m4_wait_input();
    }
}
