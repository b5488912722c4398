#!/usr/bin/env bash
# Fuzzes SwiftSNN's readers of untrusted files with libFuzzer, one target per format family:
#   events       ATIS 40-bit (N-MNIST, N-Caltech101), AEDAT 2.0, AEDAT 3.1
#   jpeg         JPEG decoding (libjpeg-turbo behind JPEG.Limits)
#   cifar        CIFAR-10/100 binary records and CIFAR-python pickles
#   pickle       SafeUnpickler, plain and with the torch.save vocabulary
#   torch        torch.save .pth files (ZIP + pickle + storage views)
#   safetensors  SafeTensors.decode
# Usage:
#   scripts/fuzz.sh [--asan|--release] [target|all] [seconds]
#     --asan     -O -sanitize=fuzzer,address (the default): memory errors are found as well
#     --release  -O -sanitize=fuzzer only: bounds and overflow checks on, as the shipped binary
#                (unsafe-pointer reads are unchecked at -O: only --asan sees those)
#     all        every target in turn, `seconds` each (the default target; 60 s by default)
#   e.g. nice -n 10 scripts/fuzz.sh --release all 600
# Seed corpora come from the real files in ../shared/data (see its PROVENANCE.md) plus crafted
# seeds, in .build/fuzz/<target>/corpus (kept between runs, so campaigns add up). Dictionaries
# are Fuzz/dict/<target>.dict. A hang over 10 s, more than 2 GB of memory, or a crash is a
# finding: libFuzzer leaves crash-*, timeout-*, oom-* in .build/fuzz/<target>/artifacts/; turn
# each into a regression test (bytes built in the test) before fixing the reader.
# Extra libFuzzer flags can be given in FUZZ_FLAGS (e.g. FUZZ_FLAGS="-jobs=2").
set -euo pipefail
cd "$(dirname "$0")/.."
config=asan
case "${1:-}" in
    --asan) config=asan; shift ;;
    --release) config=release; shift ;;
esac
target=${1:-all}
seconds=${2:-60}
targets=(events jpeg cifar pickle torch safetensors)
if [ "$target" != all ] && [[ ! " ${targets[*]} " =~ " $target " ]]; then
    echo "unknown target '$target'; one of: ${targets[*]} all" >&2
    exit 2
fi
root=.build/fuzz
build=$root/build-$config
mkdir -p "$build"
if [ "$config" = asan ]; then sanitize=fuzzer,address; else sanitize=fuzzer; fi
# SNNTensor and SNNData compiled with the sanitizers (SNNData with -enable-testing, so targets
# can reach the torch.save vocabulary), then linked with each target's entry point.
flags=(-O -sanitize="$sanitize" -parse-as-library -wmo -package-name SwiftSNN -I "$build" -I Sources/CTurboJPEG)
stamp=$build/.sources
sources=$(cat Sources/SNNTensor/*.swift Sources/SNNTensor/Ops/*.swift Sources/SNNData/*.swift | cksum)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sources" ]; then
    echo "== building SNNTensor and SNNData ($config)"
    swiftc "${flags[@]}" -module-name SNNTensor -emit-module -emit-module-path "$build/SNNTensor.swiftmodule" \
        -c Sources/SNNTensor/*.swift Sources/SNNTensor/Ops/*.swift -o "$build/SNNTensor.o"
    swiftc "${flags[@]}" -enable-testing -module-name SNNData -emit-module -emit-module-path "$build/SNNData.swiftmodule" \
        -c Sources/SNNData/*.swift -o "$build/SNNData.o"
    echo "$sources" > "$stamp"
fi

shared=../shared/data
# Copies (up to `limit` bytes of) each file to the corpus `dir`.
seed() {
    local dir=$1 limit=$2; shift 2
    local f
    for f in "$@"; do
        [ -f "$f" ] && head -c "$limit" "$f" > "$dir/real-$(basename "$f")"
    done
    return 0
}

seeds() {
    local t=$1 dir=$root/$1/corpus
    mkdir -p "$dir"
    case $t in
    events)
        seed "$dir" 4096 $(ls "$shared"/nmnist/slayerpytorch-NMNISTsmall/*.bs2 2>/dev/null | head -n 8) "$shared"/nmnist/tonic/sample_nmnist.bin
        # The first 4 KB of an ATIS file cut at a whole event (4095 bytes).
        [ -f "$shared"/nmnist/tonic/sample_nmnist.bin ] && head -c 4095 "$shared"/nmnist/tonic/sample_nmnist.bin > "$dir/real-atis-4095"
        seed "$dir" 6144 "$shared"/dvs128-aedat2/DVS128DataAnalysis/*.aedat
        # An AEDAT 3.1 file: header, one polarity packet of one valid event, one special packet.
        printf '#!AER-DAT3.1\r\n#Format: RAW\r\n#!END-HEADER\r\n\x01\x00\x01\x00\x08\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x07\x00\x02\x00\x10\x00\x00\x00\x00\x00\x01\x00\x08\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x20\x00\x00\x00' > "$dir/aedat3"
        ;;
    jpeg)
        seed "$dir" 1000000 $(ls "$shared"/imagenet-sample/imagenette-224/val/*/*.JPEG 2>/dev/null | head -n 12)
        seed "$dir" 40000 "$shared"/imagenet-sample/original-resolution/n03000684_chain_saw.JPEG "$shared"/imagenet-sample/original-resolution/n03445777_golf_ball.JPEG
        # Originals with EXIF and AppleMark segments: their first 8 KB (headers, then a truncation).
        seed "$dir" 8192 "$shared"/imagenet-sample/original-resolution/*.JPEG
        if command -v python3 > /dev/null && python3 -c 'import PIL' 2> /dev/null; then
            python3 - "$dir" <<'PY'
import io, sys
from PIL import Image
out = sys.argv[1]
img = Image.new("RGB", (24, 16), (200, 30, 60))
for name, kw in [("progressive", dict(progressive=True)), ("q10", dict(quality=10)), ("444", dict(subsampling=0))]:
    img.save(f"{out}/{name}.jpg", "JPEG", **kw)
Image.new("L", (16, 16), 90).save(f"{out}/gray.jpg", "JPEG")
Image.new("CMYK", (16, 8), (10, 20, 30, 40)).save(f"{out}/cmyk.jpg", "JPEG")
PY
        fi
        ;;
    cifar)
        # No real CIFAR file is available (see PROVENANCE.md): records and pickles made here.
        python3 - "$dir" <<'PY'
import pickle, struct, sys
out = sys.argv[1]
pixels = bytes((i * 7) % 256 for i in range(3072))
open(f"{out}/cifar10.bin", "wb").write(bytes([3]) + pixels + bytes([8]) + pixels[::-1])
open(f"{out}/cifar100.bin", "wb").write(bytes([11, 42]) + pixels)
try:
    import numpy as np
    data = np.frombuffer(pixels * 2, dtype=np.uint8).reshape(2, 3072)
    open(f"{out}/cifar10.pkl", "wb").write(pickle.dumps({b"batch_label": b"testing batch 1 of 1", b"labels": [3, 8], b"data": data, b"filenames": [b"a.png", b"b.png"]}, protocol=2))
    open(f"{out}/cifar100.pkl", "wb").write(pickle.dumps({"fine_labels": np.array([42, 7]), "coarse_labels": [11, 3], "data": data}, protocol=2))
except ImportError:
    pass
# Without numpy: the same dict spelled with the opcodes numpy 1.x protocol 2 writes.
def s(t): return b"X" + struct.pack("<I", len(t)) + t
p = (b"\x80\x02}q\x00(" + s(b"labels") + b"]q\x01(K\x03K\x08e" + s(b"data")
     + b"cnumpy.core.multiarray\n_reconstruct\nq\x02cnumpy\nndarray\nq\x03K\x00\x85q\x04C\x01b\x87q\x05Rq\x06(K\x01M\x02\x00M\x00\x0c\x86q\x07cnumpy\ndtype\nq\x08X\x02\x00\x00\x00u1K\x00K\x01\x87Rq\t(K\x03X\x01\x00\x00\x00|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89"
     + b"B" + struct.pack("<I", 6144) + pixels * 2 + b"tbu.")
open(f"{out}/cifar10-handmade.pkl", "wb").write(p)
PY
        ;;
    pickle)
        printf '\x80\x02}q\x00(X\x04\x00\x00\x00dataq\x01K\x01u.' > "$dir/dict"
        printf '\x80\x02]q\x00(K\x01G?\xf0\x00\x00\x00\x00\x00\x00\x88N\x8c\x01a\x85q\x01h\x01e.' > "$dir/list"
        python3 - "$dir" <<'PY'
import collections, pickle, sys
out = sys.argv[1]
for proto in (0, 2, 4, 5):
    obj = {"a": [1, -2, 3.5, None, True], "b": (b"xy", "z" * 40), "c": {"n": 2 ** 40}, "big": 2 ** 70 - 1}
    open(f"{out}/plain-p{proto}", "wb").write(pickle.dumps(obj, protocol=proto))
open(f"{out}/ordereddict", "wb").write(pickle.dumps(collections.OrderedDict([("w", 1), ("b", 2)]), protocol=2))
try:
    import numpy as np
    for proto in (2, 4):
        open(f"{out}/numpy-p{proto}", "wb").write(pickle.dumps({"x": np.arange(6, dtype=np.float32).reshape(2, 3), "y": np.array([1, 2], dtype=np.int64)}, protocol=proto))
except ImportError:
    pass
PY
        # The data.pkl of a real torch.save file (tensors by persistent id).
        python3 - "$dir" Tests/SNNTrainingTests/Fixtures/interop/residual/weights.pth <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[2]) as z:
    name = next(n for n in z.namelist() if n.endswith("data.pkl"))
    open(f"{sys.argv[1]}/torch-data.pkl", "wb").write(z.read(name))
PY
        ;;
    torch)
        cp Tests/SNNTrainingTests/Fixtures/interop/residual/weights.pth "$dir/weights.pth"
        find Tests -name '*.pth' -size -64k -exec sh -c 'cp "$1" "$2/$(echo "$1" | tr / _)"' _ {} "$dir" \;
        # Its data.pkl alone: the target wraps a non-ZIP input in an archive with storages 0 and 1.
        python3 - "$dir" Tests/SNNTrainingTests/Fixtures/interop/residual/weights.pth <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[2]) as z:
    name = next(n for n in z.namelist() if n.endswith("data.pkl"))
    open(f"{sys.argv[1]}/data.pkl", "wb").write(z.read(name))
PY
        # A state dict {'w': FloatStorage '0' viewed [2, 3] stride [1, 2]} as data.pkl.
        printf '\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x10tQK\x01K\x02K\x03\x86K\x01K\x02\x86\x89ccollections\nOrderedDict\n)Rtq\x02Rs.' > "$dir/view.pkl"
        ;;
    safetensors)
        python3 - "$dir" <<'PY'
import json, struct, sys
out = sys.argv[1]
def write(name, tensors, metadata=None):
    header, blob = {}, b""
    for k, (dtype, shape, data) in sorted(tensors.items()):
        header[k] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-(8 + len(h)) % 8)
    open(f"{out}/{name}", "wb").write(struct.pack("<Q", len(h)) + h + blob)
write("crafted-f32", {"w": ("F32", [2, 3], struct.pack("<6f", *range(6))), "b": ("F32", [3], struct.pack("<3f", 1, 2, 3))}, {"format": "pt"})
write("crafted-mixed", {"a": ("I64", [2], struct.pack("<2q", 1, -1)), "h": ("F16", [1, 2], b"\x00<\x00\xc0"), "u": ("U8", [0], b""), "s": ("F64", [], struct.pack("<d", 0.5))})
write("crafted-empty", {})
try:
    import numpy as np
    from safetensors.numpy import save
    blob = save({"conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2), "bn.num_batches_tracked": np.array(3, dtype=np.int64),
                 "half": np.ones((2, 2), dtype=np.float16)}, metadata={"format": "pt"})
    open(f"{out}/python-safetensors", "wb").write(blob)
except ImportError:
    pass
PY
        ;;
    esac
}

max_len() {
    case $1 in
        events) echo 16384 ;; jpeg) echo 65536 ;; cifar) echo 16384 ;;
        pickle) echo 8192 ;; torch) echo 16384 ;; safetensors) echo 4096 ;;
    esac
}

run() {
    local t=$1 dir=$root/$1
    mkdir -p "$dir/artifacts"
    swiftc "${flags[@]}" -module-name "fuzz_$t" "Fuzz/$t.swift" "$build/SNNTensor.o" "$build/SNNData.o" \
        -lturbojpeg -o "$build/fuzz-$t"
    seeds "$t"
    echo "== $t ($config, ${seconds}s): $(ls "$dir/corpus" | wc -l) corpus files"
    # New inputs go to the corpus; the seeds already live there.
    # The log keeps everything; the terminal gets all but the NEW/REDUCE/pulse lines.
    { "$build/fuzz-$t" "$dir/corpus" -dict="Fuzz/dict/$t.dict" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
        -max_total_time="$seconds" -artifact_prefix="$dir/artifacts/$config-" -print_final_stats=1 ${FUZZ_FLAGS:-} 2>&1
      echo $? > "$dir/.status"; } | tee "$dir/$config.log" | { grep --line-buffered -v -E '^#[0-9]+.*(NEW|REDUCE|pulse)' || true; }
    local status
    status=$(cat "$dir/.status")
    local done execs
    done=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$dir/$config.log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' || true)
    execs=$(grep -oE 'number_of_executed_units: [0-9]+' "$dir/$config.log" | grep -oE '[0-9]+$' || true)
    echo "== $t ($config, ${seconds}s): exit $status, ${execs:-?} executions, ${done:-no final stats}, $(ls "$dir/corpus" | wc -l) corpus files, findings: $(ls "$dir/artifacts" | grep "^$config-" | tr '\n' ' ')"
    return "$status"
}

failed=0
if [ "$target" = all ]; then
    for t in "${targets[@]}"; do run "$t" || failed=1; done
else
    run "$target" || failed=1
fi
exit $failed
