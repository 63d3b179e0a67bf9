/* edgedigit: the device side of the serial protocol (MLPerf Tiny DUT commands + edgedigit's own; see
 * docs/protocol.md). Hand-written; uses only edgedigit_platform.h and edgedigit_model.h. */
#ifndef EDGEDIGIT_PROTOCOL_H
#define EDGEDIGIT_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Call once after platform and model init, with edgedigit_model_init()'s result (inferences are refused
 * unless it is 0; ed-info reports it). Computes the CRC-32 of the model's data. Prints nothing: a client
 * that connects later must read only answers to its own commands. */
void edgedigit_protocol_init(int model_status);
/* Feed one received byte; a complete command (terminated by '%') is executed at once. */
void edgedigit_protocol_feed(char c);
/* Read every waiting byte from the platform and feed it. Call from the main loop. */
void edgedigit_protocol_poll(void);

#ifdef __cplusplus
}
#endif
#endif /* EDGEDIGIT_PROTOCOL_H */
