#!/usr/bin/env bash
# Set up edgedigit on a fresh Debian/Ubuntu machine: system tools (apt) and a virtual environment (.venv).
#
#   scripts/setup.sh          the toolchain and the emulated boards' tools
#   scripts/setup.sh --dev    the same plus the test and lint tools
#
# System tools: gcc/g++/make (host board and native C), gcc-arm-none-eabi + newlib and qemu-system-arm
# (the emulated Cortex-M4 board), clang + its runtime (sanitizers and libFuzzer), valgrind (instruction
# counts). Installed with apt-get when missing (as root, or through sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"

need=()
for pair in gcc:gcc g++:g++ make:make arm-none-eabi-gcc:gcc-arm-none-eabi qemu-system-arm:qemu-system-arm \
            clang:clang valgrind:valgrind avr-gcc:gcc-avr avr-objdump:binutils-avr \
            simavr:simavr; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
[ -f /usr/lib/avr/include/avr/io.h ] || need+=(avr-libc)
[ -f /usr/lib/arm-none-eabi/newlib/libc.a ] || [ -d /usr/lib/arm-none-eabi/newlib ] || need+=(libnewlib-arm-none-eabi)
# the tflm backend on qemu-m4 compiles TFLM's C++ for the Cortex-M4 (C++ headers and libstdc++ for newlib)
ls /usr/lib/arm-none-eabi/newlib/thumb/v7e-m+fp/hard/libstdc++.a >/dev/null 2>&1 || need+=(libstdc++-arm-none-eabi-newlib)
ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 || need+=(libclang-rt-14-dev)
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing system packages: ${need[*]}"
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".${extras}"
echo "setup: done (.venv/bin/edgedigit $(.venv/bin/edgedigit --version | cut -d' ' -f2))"
