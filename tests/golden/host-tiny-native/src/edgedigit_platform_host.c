/* edgedigit: the platform layer of the `host` board. Hand-written; shipped with host firmware projects.
 *
 * The firmware runs as a POSIX process. Its serial port is a pseudo-terminal: the process opens the
 * master side, prints the slave's path on stdout ("edgedigit-host: serial on /dev/pts/N"), and any
 * program (edgedigit's bench, pyserial, screen) talks to it through that path. The counter is
 * CLOCK_MONOTONIC in nanoseconds.
 */
#define _XOPEN_SOURCE 600

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "edgedigit_platform.h"
#include "edgedigit_platform_host.h"

static int s_master = -1;
static int s_slave_keepalive = -1; /* keeps the pty alive while no client has it open */

static void fail(const char *what) {
    fprintf(stderr, "edgedigit-host: %s failed: errno %d\n", what, errno);
    exit(2);
}

void edgedigit_platform_init(void) {
    s_master = posix_openpt(O_RDWR | O_NOCTTY);
    if (s_master < 0) {
        fail("posix_openpt");
    }
    if (grantpt(s_master) != 0 || unlockpt(s_master) != 0) {
        fail("grantpt/unlockpt");
    }
    const char *path = ptsname(s_master);
    if (path == NULL) {
        fail("ptsname");
    }
    s_slave_keepalive = open(path, O_RDWR | O_NOCTTY);
    if (s_slave_keepalive < 0) {
        fail("open pty slave");
    }
    /* Raw mode: no echo, no line editing, no CR/LF translation, every byte passes as it is. */
    struct termios t;
    if (tcgetattr(s_slave_keepalive, &t) != 0) {
        fail("tcgetattr");
    }
    t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    t.c_oflag &= ~(tcflag_t)OPOST;
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
    t.c_cflag |= CS8;
    if (tcsetattr(s_slave_keepalive, TCSANOW, &t) != 0) {
        fail("tcsetattr");
    }
    int flags = fcntl(s_master, F_GETFL);
    if (flags < 0 || fcntl(s_master, F_SETFL, flags | O_NONBLOCK) != 0) {
        fail("fcntl O_NONBLOCK");
    }
    printf("edgedigit-host: serial on %s\n", path);
    fflush(stdout);
}

int edgedigit_platform_read_char(void) {
    unsigned char c;
    ssize_t n = read(s_master, &c, 1);
    return n == 1 ? (int)c : -1;
}

void edgedigit_platform_write(const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(s_master, data, len);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return; /* the line is gone; nothing sensible to do with the output */
        } else {
            struct pollfd p = {s_master, POLLOUT, 0};
            (void)poll(&p, 1, 100);
        }
    }
}

void edgedigit_host_wait_input(int timeout_ms) {
    struct pollfd p = {s_master, POLLIN, 0};
    (void)poll(&p, 1, timeout_ms);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t s_boot_ns;

uint32_t edgedigit_platform_micros(void) {
    if (s_boot_ns == 0u) {
        s_boot_ns = now_ns();
    }
    return (uint32_t)((now_ns() - s_boot_ns) / 1000u);
}

uint64_t edgedigit_platform_counter(void) { return now_ns(); }

const char *edgedigit_platform_counter_unit(void) { return "ns"; }

const char *edgedigit_platform_name(void) { return "host"; }
