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
	$(BIN)/python -m pip install --quiet -e '.[test,openvino,tflite,torch,minilm]'
	$(BIN)/edgepack toolchain install tflite
	$(BIN)/edgepack toolchain install tensorflow
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/edgepack build   # no flags: edgepack.toml declares the demo build

# emulated aarch64 verification and the loopback "board" need Debian's qemu-user-static,
# OpenSSH and arm64 package lists (the tests run as root on Debian, as CI does)
$(SYSDEPS): $(STAMP)
	command -v qemu-aarch64-static >/dev/null && command -v sshd >/dev/null && command -v chromium >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq qemu-user-static openssh-server openssh-client chromium)
	dpkg --print-foreign-architectures | grep -qx arm64 || \
		(dpkg --add-architecture arm64 && apt-get update -qq)
	$(BIN)/edgepack toolchain install emulator
	touch $(SYSDEPS)

test: $(STAMP) $(SYSDEPS)
	$(BIN)/ruff check edgepack tests benchmarks sample_models
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/harness_overhead.py
	$(BIN)/python benchmarks/minilm_tflite.py

clean:
	rm -rf dist .pytest_cache
