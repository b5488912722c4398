# SwiftSNN: `make test` and `make demo` install what is missing, build, then run.
SWIFT        ?= swift
APT_PACKAGES := libdnnl-dev libopenblas-openmp-dev libturbojpeg0-dev libhdf5-dev librsvg2-2 libopenmpi-dev openmpi-bin
PIP_PACKAGES := numpy safetensors tensorboard nir
# CUDA 13's NVRTC and headers (65 MB): the tests compile every kernel with NVRTC for several GPU
# architectures and check SwiftSNN's C prototypes against cuda.h and nvrtc.h, and against
# cuBLAS's, cuDNN's and NCCL's headers, which scripts/fetch_library_headers.py reads out of their
# wheels (1.8 MB of 1,168 MB). No GPU is needed.
CUDA_WHEELS  := nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cuda-crt nvidia-cuda-cccl
export CUDA_WHEELS_PRESENT := import nvidia.cu13, os; d = list(nvidia.cu13.__path__)[0]; \
	assert all(os.path.exists(d + f) for f in ("/include/nvrtc.h", "/include/cuda.h", "/lib/libnvrtc.so.13", \
	                                           "/include/crt/host_defines.h", "/include/nv/target"))
LIBRARY_HEADERS := .build/library-headers
RELEASE_BIN  := .build/release/snn

.PHONY: deps build release test test-slow demo bench bundle clean

deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@python3 -c "import numpy, safetensors, tensorboard, nir" 2>/dev/null || python3 -m pip install -q $(PIP_PACKAGES)
	@python3 -c "$$CUDA_WHEELS_PRESENT" 2>/dev/null || python3 -m pip install -q $(CUDA_WHEELS)
	@grep -qs nvidia-nccl $(LIBRARY_HEADERS)/VERSIONS || python3 scripts/fetch_library_headers.py --into $(LIBRARY_HEADERS)

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product snn

# Suites of SwiftSNN's C kernels, run again with each instruction-set variant below the host's.
ISA_SUITES = WinogradTests|SpikeConvTests|CPUKernelTests|DNNLSmokeTests|ParallelTests|BatchNormNeuronScanParityTests

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	SNN_MAX_CPU_ISA=avx2 $(SWIFT) test --skip-build --filter '$(ISA_SUITES)'
	SNN_MAX_CPU_ISA=base $(SWIFT) test --skip-build --filter '$(ISA_SUITES)'

test-slow: deps
	SNN_SLOW_TESTS=1 $(SWIFT) test

bench: release
	$(RELEASE_BIN) bench ops
	$(RELEASE_BIN) bench train --topology VGGSNN --dataset DVSCIFAR10 --T 10 --batch_size 16

# Trains the default small VGG-style SNN with the TRT loss on the built-in synthetic event data.
demo: release
	$(RELEASE_BIN) train --output runs

# A relocatable tarball: the release binary with the Swift runtime linked in statically and every
# shared library it loads but the C library's own (oneDNN, OpenBLAS, libgomp, libhdf5 and what
# they load) under lib/, found through an $$ORIGIN run path (DT_RPATH, so the libraries' own
# dependencies are found there too). Runs on Linux x86_64 machines without Swift.
BUNDLE_DIR := .build/bundle/snn
# What a lent GPU host is sent: the compressed bundle must stay within 60 MB.
BUNDLE_LIMIT_BYTES := 60000000
bundle: deps
	$(SWIFT) build -c release --product snn --static-swift-stdlib -Xlinker --disable-new-dtags -Xlinker -rpath -Xlinker '$$ORIGIN/../lib'
	rm -rf $(BUNDLE_DIR) && mkdir -p $(BUNDLE_DIR)/bin $(BUNDLE_DIR)/lib
	cp $(RELEASE_BIN) $(BUNDLE_DIR)/bin/
	strip --strip-debug $(BUNDLE_DIR)/bin/snn   # the symbol table stays, for readable crash backtraces
	ldd $(RELEASE_BIN) | awk '/=> \// {print $$3}' \
		| grep -vE '/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux-x86-64)\.so' \
		| xargs -I{} cp -L {} $(BUNDLE_DIR)/lib/
	tar -C .build/bundle -cf .build/snn-linux-x86_64.tar snn && gzip -9 -f .build/snn-linux-x86_64.tar   # -9: 0.3 MB under the default
	@size=$$(stat -c %s .build/snn-linux-x86_64.tar.gz); \
	if [ $$size -gt $(BUNDLE_LIMIT_BYTES) ]; then \
		echo "bundle: .build/snn-linux-x86_64.tar.gz is $$size bytes, over the limit of $(BUNDLE_LIMIT_BYTES) bytes" >&2; exit 1; \
	fi; \
	echo "bundle: .build/snn-linux-x86_64.tar.gz ($$size bytes; $(BUNDLE_DIR)/bin/snn)"

clean:
	rm -rf .build
