#!/usr/bin/env bash
# The one prepared check for a lent GPU machine (issue 19). Here, with Swift: builds the bundle
# (`make bundle`). There, without Swift (the device tool carries the working tree and
# `.build/snn-linux-x86_64.tar.gz`): unpacks the bundle, lists the devices and libraries found,
# runs `snn selftest --device cuda` (for at most SNN_SELFTEST_TIMEOUT seconds, default 300), then
# (when it found the GPU, even if a check failed: a lent GPU's run is rare, and its figures say
# where the time goes either way) `snn bench ops --device cuda --json` and
# `snn bench train --device cuda --json` for ResNet-19 (CIFAR-10, T=6) and VGGSNN (48x48 events,
# T=10) at batch 64, in float32 (with --tf32, as PyTorch's cuDNN default) and with --amp fp16,
# and the reference PyTorch code on the same shapes and precision where it was carried
# (SNN_REFERENCE_DIR, default .build/reference), each benchmark bounded by SNN_BENCH_TIMEOUT
# seconds (default 60) and all of them by SNN_CHECK_SECONDS (540), writing every output to $OUT
# when it is set.
# Arguments go to `snn selftest` (e.g. `--train-steps 100`). Exits with the selftest's status: 0
# when every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=.build/snn-linux-x86_64.tar.gz
# Where Swift is, the bundle is (re)built, so a stale one is never carried; make rebuilds only
# what changed.
if command -v swift >/dev/null; then
    make bundle
elif [ ! -f "$bundle" ]; then
    echo "device-check: $bundle is missing and there is no Swift here to build it: run make bundle first and carry it" >&2
    exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
SECONDS=0
tar -C "$work" -xzf "$bundle"
snn="$work/snn/bin/snn"
out=${OUT:-$work}
mkdir -p "$out"
device=${SNN_DEVICE:-cuda}
# The device tool stops a command after 600 s: the benchmarks end early enough for the script to
# end, with the selftest's status, within SNN_CHECK_SECONDS (default 540) of unpacking the bundle.
budget=${SNN_CHECK_SECONDS:-540}
limit=${SNN_BENCH_TIMEOUT:-60}
# Runs a benchmark, its JSON into $2.json and its errors into $2.err, for at most SNN_BENCH_TIMEOUT
# seconds and what is left of the budget (SIGKILL 5 s after SIGTERM, which a launcher may have
# blocked), and prints `$1: exit N: <its JSON>`, or that it was skipped.
bounded() {
    local label=$1 file=$2
    shift 2
    local left=$((budget - SECONDS - 5))
    if [ "$left" -lt 5 ]; then
        echo "$label: skipped: the check's $budget s are spent"
        return
    fi
    timeout -k 5 "$((left < limit ? left : limit))" "$@" > "$file.json" 2> "$file.err"
    echo "$label: exit $?: $(cat "$file.json")"
}
"$snn" devices | tee "$out/devices.txt"
set +e
# The selftest prints each check as it completes, so a device failure or a hang keeps the lines
# before it.
selftest_limit=${SNN_SELFTEST_TIMEOUT:-300}
timeout -k 5 "$selftest_limit" "$snn" selftest --device "$device" "$@" 2>&1 | tee "$out/selftest.txt"
status=${PIPESTATUS[0]}
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "selftest: stopped after $selftest_limit s"
fi
if head -n 1 "$out/selftest.txt" | grep -q '^selftest on '; then
    if [ "$status" -ne 0 ]; then
        echo "selftest: exit $status; the benchmarks run all the same, and their figures are of a build that failed a check"
    fi
    # The reference beside each benchmark on the same GPU, when its code was carried (never
    # committed): git clone the ZBX05/Temporal-Regularization-Training mirror into
    # .build/reference first. Importing torch takes seconds: asked once.
    reference=${SNN_REFERENCE_DIR:-.build/reference}
    with_reference=$([ -d "$reference" ] && python3 -c "import torch" 2>/dev/null && echo 1 || true)
    bounded "bench ops" "$out/bench-ops" "$snn" bench ops --device "$device" --json
    for bench in "ResNet-19 CIFAR10 6 0" "VGGSNN DVSCIFAR10 10 0" "ResNet-19 CIFAR10 6 fp16" "VGGSNN DVSCIFAR10 10 fp16"; do
        set -- $bench
        tf32=$([ "$4" = 0 ] && echo --tf32 || true)
        bounded "bench $1 --amp $4" "$out/bench-$1-$4" "$snn" bench train --device "$device" --topology "$1" \
            --dataset "$2" --T "$3" --amp "$4" $tf32 --batch_size 64 --steps 3 --warmup 1 --json
        if [ -n "$with_reference" ]; then
            amp=$([ "$4" = 0 ] && echo 0 || echo 1)
            bounded "reference $1 --amp $amp" "$out/reference-$1-$4" python3 scripts/bench_reference.py \
                --reference-dir "$reference" --snn "$snn" --device "$device" --amp "$amp" --topology "$1" --dataset "$2" \
                --T "$3" --batch_size 64 --steps 3 --warmup 1
        fi
    done
fi
exit "$status"
