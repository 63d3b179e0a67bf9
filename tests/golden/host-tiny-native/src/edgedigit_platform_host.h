/* edgedigit: host-board extras beside edgedigit_platform.h. Hand-written. */
#ifndef EDGEDIGIT_PLATFORM_HOST_H
#define EDGEDIGIT_PLATFORM_HOST_H

/* Sleep until the serial line has input or timeout_ms passes (keeps the idle loop off the CPU). */
void edgedigit_host_wait_input(int timeout_ms);

#endif /* EDGEDIGIT_PLATFORM_HOST_H */
