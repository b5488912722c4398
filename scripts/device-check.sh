#!/usr/bin/env bash
# The one prepared check for a lent GPU machine (issue 19). Here, with Swift: builds the bundle
# (`make bundle`). There, without Swift (the device tool carries the working tree and
# `.build/snn-linux-x86_64.tar.gz`): unpacks the bundle, lists the devices and libraries found,
# runs `snn selftest --device cuda`, then (when it passed) `snn bench ops --device cuda --json` and
# `snn bench train --device cuda --json`
# for ResNet-19 (CIFAR-10, T=6) and VGGSNN (48x48 events, T=10) at batch 64, in float32 (with
# --tf32, as PyTorch's cuDNN default) and with --amp fp16, each bounded by SNN_BENCH_TIMEOUT
# seconds (default 60; SIGKILL 5 s later if SIGTERM did not stop it, as when a launcher started
# the script with SIGTERM blocked), and the reference PyTorch code on the same shapes and
# precision where it was carried (SNN_REFERENCE_DIR, default .build/reference), writing every
# output to $OUT when it is set.
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
tar -C "$work" -xzf "$bundle"
snn="$work/snn/bin/snn"
out=${OUT:-$work}
mkdir -p "$out"
"$snn" devices | tee "$out/devices.txt"
set +e
"$snn" selftest --device "${SNN_DEVICE:-cuda}" "$@" 2>&1 | tee "$out/selftest.txt"
status=${PIPESTATUS[0]}
if [ "$status" -eq 0 ]; then
    timeout -k 5 "${SNN_BENCH_TIMEOUT:-60}" "$snn" bench ops --device "${SNN_DEVICE:-cuda}" --json > "$out/bench-ops.json" 2> "$out/bench-ops.err"
    echo "bench ops: exit $?: $(cat "$out/bench-ops.json")"
    for bench in "ResNet-19 CIFAR10 6 0" "VGGSNN DVSCIFAR10 10 0" "ResNet-19 CIFAR10 6 fp16" "VGGSNN DVSCIFAR10 10 fp16"; do
        set -- $bench
        tf32=$([ "$4" = 0 ] && echo --tf32 || true)
        timeout -k 5 "${SNN_BENCH_TIMEOUT:-60}" "$snn" bench train --device "${SNN_DEVICE:-cuda}" --topology "$1" --dataset "$2" \
            --T "$3" --amp "$4" $tf32 --batch_size 64 --steps 3 --warmup 1 --json > "$out/bench-$1-$4.json" 2> "$out/bench-$1-$4.err"
        echo "bench $1 --amp $4: exit $?: $(cat "$out/bench-$1-$4.json")"
        # The reference beside it on the same GPU, when its code was carried (never committed):
        # git clone the ZBX05/Temporal-Regularization-Training mirror into .build/reference first.
        reference=${SNN_REFERENCE_DIR:-.build/reference}
        if [ -d "$reference" ] && python3 -c "import torch" 2>/dev/null; then
            amp=$([ "$4" = 0 ] && echo 0 || echo 1)
            timeout -k 5 "${SNN_BENCH_TIMEOUT:-60}" python3 scripts/bench_reference.py --reference-dir "$reference" --snn "$snn" \
                --device "${SNN_DEVICE:-cuda}" --amp "$amp" --topology "$1" --dataset "$2" --T "$3" --batch_size 64 --steps 3 \
                --warmup 1 > "$out/reference-$1-$4.json" 2> "$out/reference-$1-$4.err"
            echo "reference $1 --amp $amp: exit $?: $(cat "$out/reference-$1-$4.json")"
        fi
    done
fi
exit "$status"
