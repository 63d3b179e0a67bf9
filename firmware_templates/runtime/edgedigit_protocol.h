/* edgedigit: the device side of the serial protocol (MLPerf Tiny DUT commands + edgedigit's own; see
 * docs/protocol.md). Hand-written; uses only edgedigit_platform.h and edgedigit_model.h. */
#ifndef EDGEDIGIT_PROTOCOL_H
#define EDGEDIGIT_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Print the boot banner ("m-init-done"); call once after platform and model init. */
void edgedigit_protocol_init(void);
/* Feed one received byte; a complete command (terminated by '%') is executed at once. */
void edgedigit_protocol_feed(char c);
/* Read every waiting byte from the platform and feed it. Call from the main loop. */
void edgedigit_protocol_poll(void);

#ifdef __cplusplus
}
#endif
#endif /* EDGEDIGIT_PROTOCOL_H */
