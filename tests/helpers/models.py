"""Small ONNX models with the properties of real edge models, built with onnx.helper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

T, H = 8, 6  # frames per call, hidden size


def _save(graph: onnx.GraphProto, path: Path, opset: int = 17) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def _init(name: str, arr: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(arr), name)


def _gru(prefix: str, x: str, h0: str, inputs: int, rng) -> tuple[list, list]:
    """A GRU layer's node and weights: Y [T, 1, 1, H], Y_h [1, 1, H]."""
    w = _init(f"{prefix}_W", (rng.standard_normal((1, 3 * H, inputs)) * 0.5).astype(np.float32))
    r = _init(f"{prefix}_R", (rng.standard_normal((1, 3 * H, H)) * 0.5).astype(np.float32))
    b = _init(f"{prefix}_B", (rng.standard_normal((1, 6 * H)) * 0.1).astype(np.float32))
    node = helper.make_node("GRU", [x, w.name, r.name, b.name, "", h0],
                            [f"{prefix}_Y", f"{prefix}_Yh"], hidden_size=H,
                            linear_before_reset=1, name=prefix)
    return [node], [w, r, b]


def streaming_gru(path: Path, seed: int = 0) -> Path:
    """A streaming 2-layer GRU: input ``frames`` [1, T] and a recurrent ``state`` [2, 1, H]
    (one row per layer, not a batch axis); outputs ``logits`` [1, 4], the next ``new_state``
    [2, 1, H], and ``sequence`` [T, 1, H], time-major."""
    rng = np.random.default_rng(seed)
    inits = [_init("seq_shape", np.array([T, 1, 1], np.int64)),
             _init("starts", np.array([0], np.int64)), _init("mids", np.array([1], np.int64)),
             _init("ends", np.array([2], np.int64)), _init("axis0", np.array([0], np.int64)),
             _init("axis1", np.array([1], np.int64)),
             _init("flat", np.array([1, H], np.int64)),
             _init("W_out", rng.standard_normal((H, 4)).astype(np.float32))]
    nodes = [helper.make_node("Reshape", ["frames", "seq_shape"], ["x"]),
             helper.make_node("Slice", ["state", "starts", "mids", "axis0"], ["h1"]),
             helper.make_node("Slice", ["state", "mids", "ends", "axis0"], ["h2"])]
    n1, w1 = _gru("gru1", "x", "h1", 1, rng)
    nodes += n1 + [helper.make_node("Squeeze", ["gru1_Y", "axis1"], ["x2"])]
    n2, w2 = _gru("gru2", "x2", "h2", H, rng)
    nodes += n2 + [
        helper.make_node("Concat", ["gru1_Yh", "gru2_Yh"], ["new_state"], axis=0),
        helper.make_node("Squeeze", ["gru2_Y", "axis1"], ["sequence"]),
        helper.make_node("Reshape", ["gru2_Yh", "flat"], ["last"]),
        helper.make_node("MatMul", ["last", "W_out"], ["logits"])]
    graph = helper.make_graph(
        nodes, "streaming_gru",
        [helper.make_tensor_value_info("frames", TensorProto.FLOAT, [1, T]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, 1, H])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("new_state", TensorProto.FLOAT, [2, 1, H]),
         helper.make_tensor_value_info("sequence", TensorProto.FLOAT, [T, 1, H])],
        initializer=inits + w1 + w2)
    return _save(graph, path)


def streaming_data(path: Path, samples: int = 24, seed: int = 1) -> Path:
    """Audio-like frames and carried-over states, with a leading samples axis."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, T, dtype=np.float32)
    frames = np.stack([np.sin(2 * np.pi * (3 + i % 5) * t + i)[None] for i in range(samples)])
    state = np.tanh(rng.standard_normal((samples, 2, 1, H))).astype(np.float32)
    np.savez(path, frames=frames.astype(np.float32), state=state)
    return path


def branching_lstm(path: Path, seed: int = 0) -> Path:
    """``y`` [1, H] from ``x`` [1, T]: an LSTM when the int64 scalar ``sample_rate`` is 16000,
    a plain projection otherwise (If on an input, an LSTM inside a branch)."""
    rng = np.random.default_rng(seed)
    w = _init("W", (rng.standard_normal((1, 4 * H, 1)) * 0.5).astype(np.float32))
    r = _init("R", (rng.standard_normal((1, 4 * H, H)) * 0.5).astype(np.float32))
    then = helper.make_graph(
        [helper.make_node("Reshape", ["x", "seq_shape"], ["xs"]),
         helper.make_node("LSTM", ["xs", "W", "R"], ["", "yh"], hidden_size=H),
         helper.make_node("Reshape", ["yh", "flat"], ["y_then"])],
        "then", [], [helper.make_tensor_value_info("y_then", TensorProto.FLOAT, [1, H])])
    other = helper.make_graph(
        [helper.make_node("MatMul", ["x", "P"], ["y_else"])],
        "else", [], [helper.make_tensor_value_info("y_else", TensorProto.FLOAT, [1, H])])
    graph = helper.make_graph(
        [helper.make_node("Equal", ["sample_rate", "rate"], ["is_16k"]),
         helper.make_node("If", ["is_16k"], ["y"], then_branch=then, else_branch=other)],
        "branching_lstm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, T]),
         helper.make_tensor_value_info("sample_rate", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, H])],
        initializer=[w, r, _init("rate", np.array(16000, np.int64)),
                     _init("seq_shape", np.array([T, 1, 1], np.int64)),
                     _init("flat", np.array([1, H], np.int64)),
                     _init("P", rng.standard_normal((T, H)).astype(np.float32))])
    return _save(graph, path)


def token_embedding(path: Path, vocab: int = 50, seed: int = 0) -> Path:
    """A mean-pooled embedding of ``input_ids`` [1, 8] plus ``token_type_ids`` [1, 8] (a
    2-row table) under ``attention_mask`` [1, 8]: ``embedding`` [1, 16]."""
    rng = np.random.default_rng(seed)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["words", "input_ids"], ["w"]),
         helper.make_node("Gather", ["types", "token_type_ids"], ["t"]),
         helper.make_node("Add", ["w", "t"], ["e"]),
         helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
         helper.make_node("Unsqueeze", ["m", "last"], ["m3"]),
         helper.make_node("Mul", ["e", "m3"], ["masked"]),
         helper.make_node("ReduceSum", ["masked", "seq_axis"], ["summed"], keepdims=0),
         helper.make_node("ReduceSum", ["m", "seq_axis"], ["count"], keepdims=1),
         helper.make_node("Max", ["count", "one"], ["safe"]),
         helper.make_node("Div", ["summed", "safe"], ["embedding"])],
        "token_embedding",
        [helper.make_tensor_value_info(n, TensorProto.INT64, [1, 8])
         for n in ("input_ids", "token_type_ids", "attention_mask")],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 16])],
        initializer=[_init("words", rng.standard_normal((vocab, 16)).astype(np.float32)),
                     _init("types", rng.standard_normal((2, 16)).astype(np.float32)),
                     _init("last", np.array([2], np.int64)),
                     _init("seq_axis", np.array([1], np.int64)),
                     _init("one", np.array([[1.0]], np.float32))])
    return _save(graph, path)
