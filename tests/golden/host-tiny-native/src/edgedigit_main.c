/* edgedigit: main of the `host` board. Hand-written. Platform init, model init, protocol init, loop.
 * Nothing is written to the serial line unasked (ed-info reports the model's init result). */
#include "edgedigit_model.h"
#include "edgedigit_platform.h"
#include "edgedigit_platform_host.h"
#include "edgedigit_protocol.h"

int main(void) {
    edgedigit_platform_init();
    (void)edgedigit_platform_micros(); /* start the clock at boot */
    edgedigit_protocol_init(edgedigit_model_init());
    for (;;) {
        edgedigit_protocol_poll();
        edgedigit_host_wait_input(1000);
    }
}
