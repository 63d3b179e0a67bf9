/* edgedigit: qemu-m4 board extras beside edgedigit_platform.h. Hand-written. */
#ifndef EDGEDIGIT_PLATFORM_QEMU_M4_H
#define EDGEDIGIT_PLATFORM_QEMU_M4_H

/* Sleep (WFI) until the UART has a byte or another interrupt fires. */
void edgedigit_qemu_m4_wait_input(void);

#endif /* EDGEDIGIT_PLATFORM_QEMU_M4_H */
