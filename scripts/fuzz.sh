#!/usr/bin/env bash
# Fuzzes the event-file readers (ATIS, AEDAT 2.0 and 3.1), JPEG decoding, the CIFAR readers, the safe
# unpickler and the torch.save reader with libFuzzer for a bounded time (default 60 s). Seeds come
# from ../shared/data when present. A crash leaves crash-* inputs in .build/fuzz; turn each into a test before fixing it.
#   scripts/fuzz.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
out=.build/fuzz
mkdir -p "$out/corpus"
# SNNTensor and SNNData compiled with the sanitizers, then linked with the fuzz entry point.
flags=(-O -sanitize=fuzzer,address -parse-as-library -wmo -package-name SwiftSNN -I "$out" -I Sources/CTurboJPEG)
swiftc "${flags[@]}" -module-name SNNTensor -emit-module -emit-module-path "$out/SNNTensor.swiftmodule" \
    -c Sources/SNNTensor/*.swift Sources/SNNTensor/Ops/*.swift -o "$out/SNNTensor.o"
swiftc "${flags[@]}" -module-name SNNData -emit-module -emit-module-path "$out/SNNData.swiftmodule" \
    -c Sources/SNNData/*.swift -o "$out/SNNData.o"
swiftc "${flags[@]}" -module-name FuzzReaders Fuzz/FuzzReaders.swift "$out/SNNTensor.o" "$out/SNNData.o" \
    -lturbojpeg -o "$out/fuzz-readers"
shared=../shared/data
if [ -d "$shared" ]; then
    cp "$shared"/nmnist/slayerpytorch-NMNISTsmall/1.bs2 "$out/corpus/" 2>/dev/null || true
    head -c 4096 "$shared"/dvs128-aedat2/DVS128DataAnalysis/alex_walking_again.aedat > "$out/corpus/aedat" || true
    cp "$shared"/imagenet-sample/imagenette-224/val/n03888257/ILSVRC2012_val_00001440.JPEG "$out/corpus/jpeg" 2>/dev/null || true
fi
printf '\x80\x02}q\x00(X\x04\x00\x00\x00dataq\x01K\x01u.' > "$out/corpus/pickle"
# An AEDAT 3.1 file: header, one polarity packet of one valid event.
printf '#!AER-DAT3.1\r\n#!END-HEADER\r\n\x01\x00\x01\x00\x08\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x07\x00\x02\x00\x10\x00\x00\x00' > "$out/corpus/aedat3"
# A torch.save file (ZIP + pickle with persistent ids) from the interop fixtures.
cp Tests/SNNTrainingTests/Fixtures/interop/residual/weights.pth "$out/corpus/torch.pth"
"$out/fuzz-readers" "$out/corpus" -max_total_time="$seconds" -max_len=65536 -artifact_prefix="$out/" -print_final_stats=1
