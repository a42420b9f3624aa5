# `make demo` and `make test` each set up .venv first (Python 3.11+).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.edgepack-installed

SYSDEPS = $(VENV)/.edgepack-sysdeps

.PHONY: demo test bench clean

$(STAMP): pyproject.toml $(wildcard edgepack/toolchains/*.txt)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,data,openvino,tflite,ncnn,torch,minilm]'
	$(BIN)/edgepack toolchain install tflite
	$(BIN)/edgepack toolchain install tensorflow
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/edgepack build   # no flags: edgepack.toml declares the demo build

# emulated aarch64 verification and the loopback "board" need Debian's qemu-user-static,
# OpenSSH and arm64 package lists; device estimates need the dynamic qemu-user (it loads the
# instruction counter plugin) and gcc to build that plugin (the tests run as root on Debian,
# as CI does)
$(SYSDEPS): $(STAMP)
	command -v qemu-aarch64-static >/dev/null && command -v qemu-aarch64 >/dev/null && command -v sshd >/dev/null && command -v chromium >/dev/null && command -v gcc >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq -o DPkg::Lock::Timeout=600 qemu-user-static qemu-user openssh-server openssh-client chromium gcc)
	dpkg --print-foreign-architectures | grep -qx arm64 || \
		(dpkg --add-architecture arm64 && apt-get update -qq)
	$(BIN)/edgepack toolchain install emulator
	touch $(SYSDEPS)

test: $(STAMP) $(SYSDEPS)
	$(BIN)/ruff check edgepack tests benchmarks sample_models
	EDGEPACK_TESTS_STRICT=1 $(BIN)/python -m pytest -q -n 2 --dist loadscope --durations=30

bench: $(STAMP)
	$(BIN)/python benchmarks/harness_overhead.py
	$(BIN)/python benchmarks/minilm_tflite.py

clean:
	rm -rf dist .pytest_cache
