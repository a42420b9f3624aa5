# `make demo` and `make test` each set up .venv first (Python 3.11+).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.edgepack-installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml $(wildcard edgepack/toolchains/*.txt)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,openvino,tflite,torch,minilm]'
	$(BIN)/edgepack toolchain install tflite
	$(BIN)/edgepack toolchain install tensorflow
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/edgepack build sample_models/digits_cnn.onnx --profile rpi4 --target ort \
		--precision fp32,fp16,int8-dynamic,int8 \
		--eval sample_models/digits_cnn.npz --calib sample_models/digits_cnn_calib.npz \
		--output dist

test: $(STAMP)
	$(BIN)/ruff check edgepack tests benchmarks sample_models
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/harness_overhead.py
	$(BIN)/python benchmarks/minilm_tflite.py

clean:
	rm -rf dist .pytest_cache
