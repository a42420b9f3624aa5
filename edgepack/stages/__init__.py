"""Pipeline stages: each takes one ONNX model file and writes another."""
