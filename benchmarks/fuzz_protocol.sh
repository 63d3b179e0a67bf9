#!/bin/sh
# The long fuzz run of the device-side protocol parser (issue 7): libFuzzer + AddressSanitizer +
# UndefinedBehaviorSanitizer, seeded with the valid sessions in tests/fuzz/corpus.
#
#   sh benchmarks/fuzz_protocol.sh [SECONDS]      (default 600; prints libFuzzer's figures at the end)
#
# The corpus in the repository is never modified: new inputs go to a scratch directory under
# ${EDGEDIGIT_BUILD:-build}/fuzz/. A crash or sanitizer report stops the run with a non-zero exit code and
# leaves the input that caused it in that directory (crash-*); the exit code is libFuzzer's.
set -eu
seconds="${1:-600}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${EDGEDIGIT_BUILD:-$root/build}/fuzz"
mkdir -p "$out/corpus"
clang -g -O1 -std=c99 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I "$root/firmware_templates/runtime" "$root/tests/fuzz/fuzz_protocol.c" -o "$out/fuzz_protocol"
cd "$out"
exec ./fuzz_protocol -max_total_time="$seconds" -print_final_stats=1 -dict="$root/tests/fuzz/protocol.dict" \
    -artifact_prefix="$out/" "$out/corpus" "$root/tests/fuzz/corpus"
