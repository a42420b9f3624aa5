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


def stacked_mlp(path: Path, layers: int, width: int = 256, weights: int = 5) -> Path:
    """A stack of ``layers`` equal MatMul+Relu layers sharing ``weights`` matrices: 6 layers
    do 20% more work than 5, with the same weights (the same size on disk)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(
        (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32), f"w{i}")
        for i in range(weights)]
    nodes, x = [], "x"
    for i in range(layers):
        nodes += [helper.make_node("MatMul", [x, f"w{i % weights}"], [f"m{i}"]),
                  helper.make_node("Relu", [f"m{i}"], [f"r{i}"])]
        x = f"r{i}"
    nodes.append(helper.make_node("Identity", [x], ["y"]))
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [16, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [16, width])],
        initializer=inits)
    return _save(graph, path)


def _vad_branch(tag: str, frame: int, rng) -> onnx.GraphProto:
    """One sample rate's branch of :func:`two_rate_vad`: frames of ``frame`` samples, a
    projection, then an ``If`` on the frame count (a squeeze written as control flow: one
    frame gives a rank-3 LSTM input, several a rank-4 one that only runs at other lengths)
    and the LSTM."""
    one = helper.make_graph([helper.make_node("Unsqueeze", [f"{tag}_p", "ax0"], [f"{tag}_u"])],
                            f"{tag}_one", [], [helper.make_tensor_value_info(f"{tag}_u",
                                                                           TensorProto.FLOAT,
                                                                           None)])
    many = helper.make_graph([helper.make_node("Unsqueeze", [f"{tag}_p", "ax01"],
                                               [f"{tag}_u2"])], f"{tag}_many", [],
                             [helper.make_tensor_value_info(f"{tag}_u2", TensorProto.FLOAT,
                                                            None)])
    nodes = [helper.make_node("Reshape", ["x", f"{tag}_frames"], [f"{tag}_f"]),
             helper.make_node("MatMul", [f"{tag}_f", f"{tag}_P"], [f"{tag}_p"]),
             helper.make_node("Shape", [f"{tag}_p"], [f"{tag}_s"]),
             helper.make_node("Gather", [f"{tag}_s", "zero"], [f"{tag}_n"]),
             helper.make_node("Equal", [f"{tag}_n", "one"], [f"{tag}_single"]),
             helper.make_node("If", [f"{tag}_single"], [f"{tag}_x"], then_branch=one,
                              else_branch=many, name=f"{tag}_squeeze"),
             helper.make_node("LSTM", [f"{tag}_x", f"{tag}_W", f"{tag}_R", "", "", "h0"],
                              ["", f"{tag}_h"], hidden_size=H, name=f"{tag}_lstm"),
             helper.make_node("Reshape", [f"{tag}_h", "flat"], [f"{tag}_y"]),
             helper.make_node("Identity", [f"{tag}_h"], [f"{tag}_state"])]
    inits = [_init(f"{tag}_frames", np.array([-1, frame], np.int64)),
             _init(f"{tag}_P", (rng.standard_normal((frame, H)) * 0.05).astype(np.float32)),
             _init(f"{tag}_W", (rng.standard_normal((1, 4 * H, H)) * 0.5).astype(np.float32)),
             _init(f"{tag}_R", (rng.standard_normal((1, 4 * H, H)) * 0.5).astype(np.float32))]
    return helper.make_graph(nodes, tag, [], [
        helper.make_tensor_value_info(f"{tag}_y", TensorProto.FLOAT, None),
        helper.make_tensor_value_info(f"{tag}_state", TensorProto.FLOAT, None)],
        initializer=inits)


def two_rate_vad(path: Path, seed: int = 0) -> Path:
    """A voice-activity detector in the shape of exported ones: ``x`` [1, samples] (dynamic
    length), a recurrent ``state`` [1, 1, H] and a scalar int64 ``sr``. Control flow: the
    state is reset when its batch differs from the input's (an ``If`` on shapes), then an
    ``If`` on ``sr == 16000`` picks a branch with an LSTM, whose input goes through a nested
    ``If`` on the frame count. At 512 samples the 8 kHz branch would feed its LSTM a rank-4
    tensor: fine while the length is dynamic or that branch is not taken, refused by shape
    inference once the length is static. Outputs ``output`` [1, H] and ``new_state``."""
    rng = np.random.default_rng(seed)
    keep = helper.make_graph([helper.make_node("Identity", ["state"], ["kept"])], "keep", [],
                             [helper.make_tensor_value_info("kept", TensorProto.FLOAT, None)])
    reset = helper.make_graph([helper.make_node("Mul", ["state", "zero_f"], ["reset"])],
                              "reset", [], [helper.make_tensor_value_info("reset",
                                                                          TensorProto.FLOAT,
                                                                          None)])
    branches = {"then_branch": _vad_branch("k16", 512, rng),
                "else_branch": _vad_branch("k8", 256, rng)}
    nodes = [helper.make_node("Shape", ["state"], ["state_shape"]),
             helper.make_node("Gather", ["state_shape", "one"], ["state_batch"]),
             helper.make_node("Shape", ["x"], ["x_shape"]),
             helper.make_node("Gather", ["x_shape", "zero"], ["x_batch"]),
             helper.make_node("Equal", ["state_batch", "x_batch"], ["same_batch"]),
             helper.make_node("If", ["same_batch"], ["h0"], then_branch=keep,
                              else_branch=reset, name="state_reset"),
             helper.make_node("Equal", ["sr", "rate16k"], ["is_16k"]),
             helper.make_node("If", ["is_16k"], ["output", "new_state"], name="rate",
                              **branches)]
    graph = helper.make_graph(
        nodes, "two_rate_vad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "samples"]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [1, 1, H]),
         helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, H]),
         helper.make_tensor_value_info("new_state", TensorProto.FLOAT, [1, 1, H])],
        initializer=[_init("rate16k", np.array(16000, np.int64)),
                     _init("ax0", np.array([0], np.int64)),
                     _init("ax01", np.array([0, 1], np.int64)),
                     _init("zero", np.array(0, np.int64)), _init("one", np.array(1, np.int64)),
                     _init("zero_f", np.array(0.0, np.float32)),
                     _init("flat", np.array([1, H], np.int64))])
    return _save(graph, path)


def length_switch(path: Path, seed: int = 0) -> Path:
    """``scores`` [1, 4] from ``x`` [1, frames, 8] (frames dynamic): an ``If`` on a shape
    comparison (more than 16 frames: mean over frames, else max), then a projection. The
    condition depends only on the input's shape, known once --input-shape fixes it."""
    rng = np.random.default_rng(seed)
    f = TensorProto.FLOAT
    mean = helper.make_graph([helper.make_node("ReduceMean", ["x", "frames_axis"],
                                               ["pooled_mean"], keepdims=0)], "mean", [],
                             [helper.make_tensor_value_info("pooled_mean", f, None)])
    peak = helper.make_graph([helper.make_node("ReduceMax", ["x", "frames_axis"],
                                               ["pooled_max"], keepdims=0)], "peak", [],
                             [helper.make_tensor_value_info("pooled_max", f, None)])
    graph = helper.make_graph(
        [helper.make_node("Shape", ["x"], ["x_shape"]),
         helper.make_node("Gather", ["x_shape", "one"], ["frames"]),
         helper.make_node("Greater", ["frames", "sixteen"], ["long"]),
         helper.make_node("If", ["long"], ["pooled"], then_branch=mean, else_branch=peak,
                          name="pool"),
         helper.make_node("MatMul", ["pooled", "W"], ["scores"])],
        "length_switch", [helper.make_tensor_value_info("x", f, [1, "frames", 8])],
        [helper.make_tensor_value_info("scores", f, [1, 4])],
        initializer=[_init("one", np.array(1, np.int64)),
                     _init("sixteen", np.array(16, np.int64)),
                     _init("frames_axis", np.array([1], np.int64)),
                     _init("W", rng.standard_normal((8, 4)).astype(np.float32))])
    return _save(graph, path, opset=18)  # ReduceMean/ReduceMax take axes as an input


def folded_branch_outputs(path: Path, seed: int = 0) -> Path:
    """``output`` from an ``If`` whose condition is a constant (the taken branch's result is
    named ``/branch/relu``, as exporters name values inside branches) and ``hn`` beside it,
    from ``x`` [1, 8]. OpenVINO folds the If when it compiles the model, and the output's
    tensor then carries both names, the branch's first."""
    rng = np.random.default_rng(seed)
    f = TensorProto.FLOAT
    then = helper.make_graph([helper.make_node("Relu", ["v"], ["/branch/relu"])], "then", [],
                             [helper.make_tensor_value_info("/branch/relu", f, [1, 8])])
    other = helper.make_graph([helper.make_node("Neg", ["v"], ["/branch/neg"])], "else", [],
                              [helper.make_tensor_value_info("/branch/neg", f, [1, 8])])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["v"]),
         helper.make_node("If", ["enabled"], ["output"], then_branch=then, else_branch=other),
         helper.make_node("Tanh", ["v"], ["hn"])],
        "folded_branch_outputs", [helper.make_tensor_value_info("x", f, [1, 8])],
        [helper.make_tensor_value_info("output", f, [1, 8]),
         helper.make_tensor_value_info("hn", f, [1, 8])],
        initializer=[_init("W", rng.standard_normal((8, 8)).astype(np.float32)),
                     _init("enabled", np.array(True))])
    return _save(graph, path)


def weight_compressed_mlp(path: Path, width: int = 384, layers: int = 4, seed: int = 0) -> Path:
    """``y`` [1, width] from ``x`` [1, width] through ``layers`` MatMul+Tanh layers whose
    weights are stored as int8 with a per-channel scale, dequantized in the graph by
    ``Cast``·``Mul`` (how weight-compressed transformers are shipped)."""
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], "x"
    for i in range(layers):
        w = rng.standard_normal((width, width)).astype(np.float32) / np.sqrt(width)
        scale = (np.abs(w).max(0) / 127).astype(np.float32)
        inits += [_init(f"w{i}_int8", np.round(w / scale).astype(np.int8)),
                  _init(f"w{i}_scale", scale)]
        nodes += [helper.make_node("Cast", [f"w{i}_int8"], [f"w{i}_cast"], to=TensorProto.FLOAT),
                  helper.make_node("Mul", [f"w{i}_cast", f"w{i}_scale"], [f"w{i}"]),
                  helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]),
                  helper.make_node("Tanh", [f"m{i}"], [f"t{i}"])]
        x = f"t{i}"
    nodes.append(helper.make_node("Identity", [x], ["y"]))
    graph = helper.make_graph(
        nodes, "weight_compressed_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])], initializer=inits)
    return _save(graph, path)


def quantized_lstm(path: Path, steps: int = 8, size: int = 16, hidden: int = 32,
                   seed: int = 0) -> Path:
    """An LSTM [steps, 1, size] -> ``y`` (its last hidden state [1, 1, hidden]) whose weights
    ONNX Runtime's dynamic quantizer turned into a ``com.microsoft`` ``DynamicQuantizeLSTM``
    (int8 weights; activations quantized as it runs): a pre-quantized model only ONNX
    Runtime runs as it is."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    rng = np.random.default_rng(seed)
    graph = helper.make_graph(
        [helper.make_node("LSTM", ["x", "W", "R", "B"], ["", "y"], hidden_size=hidden)],
        "lstm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [steps, 1, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, hidden])],
        initializer=[
            _init("W", (rng.standard_normal((1, 4 * hidden, size)) * 0.3).astype(np.float32)),
            _init("R", (rng.standard_normal((1, 4 * hidden, hidden)) * 0.3)
                  .astype(np.float32)),
            _init("B", (rng.standard_normal((1, 8 * hidden)) * 0.1).astype(np.float32))])
    float_model = _save(graph, path.with_name(path.stem + "_float.onnx"))
    quantize_dynamic(float_model, path, op_types_to_quantize=["LSTM"],
                     weight_type=QuantType.QInt8)
    return path


def probability_map(path: Path, size: int = 32, steep: float = 512.0,
                    seed: int = 0) -> Path:
    """``prob_map`` [1, 1, size, size] from ``image`` [1, 3, size, size]: two smoothing
    convolutions of the brightness and a steep sigmoid around 0.5 of it, like a text
    detector's probability map (on over the bright blobs of ``blob_images``). Pixels near the
    boundary swing far under small errors (int8), the rest of the map does not."""
    rng = np.random.default_rng(seed)
    w1 = rng.uniform(0.5, 1.5, (8, 3, 3, 3)) / 27
    w2 = rng.uniform(0.5, 1.5, (1, 8, 3, 3)) / 72
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "W1", "B1"], ["c1"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c1"], ["r1"]),
         helper.make_node("Conv", ["r1", "W2", "B2"], ["c2"], pads=[1, 1, 1, 1]),
         helper.make_node("Mul", ["c2", "steep"], ["logits"]),
         helper.make_node("Sigmoid", ["logits"], ["prob_map"])],
        "probability_map",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("prob_map", TensorProto.FLOAT, [1, 1, size, size])],
        initializer=[_init("W1", w1.astype(np.float32)), _init("B1", np.zeros(8, np.float32)),
                     _init("W2", w2.astype(np.float32)), _init("B2", np.array([-0.5], np.float32)),
                     _init("steep", np.array(steep, np.float32))])
    return _save(graph, path)


def blob_images(path: Path, samples: int = 24, size: int = 32, seed: int = 1) -> Path:
    """Images [samples, 1, 3, size, size] of a few bright blobs on a dark background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = np.zeros((samples, 1, 3, size, size), np.float32)
    for i in range(samples):
        for _ in range(3):
            cy, cx, r = rng.uniform(4, size - 4, 2).tolist() + [rng.uniform(3, 7)]
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
            images[i, 0] += blob[None] * rng.uniform(0.5, 1.5, (3, 1, 1))
    images += rng.normal(0, 0.05, images.shape).astype(np.float32)
    np.savez(path, image=images)
    return path


def encoder_mlp(path: Path, tokens: int = 16, width: int = 128, hidden: int = 256,
                seed: int = 0) -> Path:
    """A transformer block's feed-forward half and a mean pool: tokens [1, T, W] → MatMul
    (W×H) → Relu → MatMul (H×W) → + residual → mean over tokens → embedding [1, W]. Nearly
    all of its bytes are MatMul weights, as in a small sentence encoder."""
    rng = np.random.default_rng(seed)
    def weight(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) / np.sqrt(rows)).astype(np.float32)

    inits = [_init("w1", weight(width, hidden)), _init("w2", weight(hidden, width)),
             numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1")]
    nodes = [helper.make_node("MatMul", ["tokens", "w1"], ["h"]),
             helper.make_node("Relu", ["h"], ["a"]),
             helper.make_node("MatMul", ["a", "w2"], ["f"]),
             helper.make_node("Add", ["tokens", "f"], ["r"]),
             helper.make_node("ReduceMean", ["r", "axis1"], ["embedding"], keepdims=0)]
    graph = helper.make_graph(
        nodes, "encoder",
        [helper.make_tensor_value_info("tokens", TensorProto.FLOAT, [1, tokens, width])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, width])],
        initializer=inits)
    return _save(graph, path, opset=18)
