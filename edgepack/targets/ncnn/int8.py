"""ncnn int8 written directly: what ncnn2table + ncnn2int8 (C++ tools that no PyPI package
ships) do, for pnnx's fp32 ``.param``/``.bin``, calibrated through the ncnn wheel itself.

Format (ncnn's ``convolution.cpp``, ``convolutiondepthwise.cpp``, ``innerproduct.cpp``
``load_param``/``load_model``, and ``tools/quantize/ncnn2int8.cpp``): a quantized layer's
``.param`` line gains ``8=<int8_scale_term>`` (2 for Convolution and InnerProduct: a scale
per output channel; 1 for ConvolutionDepthWise: a scale per group); its ``.bin`` data become
the int8 weights (tag ``0x000D4B38``, padded to 4 bytes), the bias as it was, the weight
scales (fp32 per channel or group) and the input's scale (fp32, per tensor). A scale is a
multiplier: q = clamp(round half away from zero(x · scale), -127, 127). Weight scales are
127 / the channel's largest |w| (31 for a 3x3 stride-1 convolution, as ncnn2table does: ncnn
runs those with an int8 Winograd kernel that needs 6-bit weights). The input scale is 127 /
a threshold on the calibration samples' |x|: their largest (``max``, from --calibration
minmax), ncnn2table's KL-divergence optimum (``kl``, from entropy), the 99.99th percentile
(``percentile``), or the candidate of those with the least quantize-dequantize error
(``least-error``: plain KL clips an input of few levels and wrecks it). With ncnn2table's
scales this writer gives bit-identical outputs to ncnn2int8's (checked against the tools
built from ncnn's sources, see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TAG_FP32, TAG_FP16, TAG_INT8, TAG_FP32_SCALED = 0, 0x01306B47, 0x000D4B38, 0x0002C056
QUANTIZABLE = ("Convolution", "ConvolutionDepthWise", "InnerProduct")  # calibrated inputs
CONVOLUTIONS = ("Convolution", "ConvolutionDepthWise", "Deconvolution",
                "DeconvolutionDepthWise", "Convolution1D", "ConvolutionDepthWise1D")
# layers with nothing in the .bin (a layer neither here nor walked below is refused)
WEIGHTLESS = frozenset((
    "Input", "ReLU", "Sigmoid", "TanH", "Swish", "HardSwish", "HardSigmoid", "Mish", "GELU",
    "ELU", "SELU", "Clip", "Pooling", "Pooling1D", "Pooling3D", "Split", "Concat", "Slice",
    "Crop", "Reshape", "Flatten", "Permute", "Eltwise", "BinaryOp", "UnaryOp", "Softmax",
    "Interp", "Dropout", "Noop", "Squeeze", "ExpandDims", "Reduction",
    "ShuffleChannel", "PixelShuffle", "Flip", "Tile", "Power", "Exp", "Log", "AbsVal", "Erf",
    "Threshold", "Cast", "DeepCopy", "MatMul", "MVN", "GLU", "CopyTo", "ArgMax",
    "Unfold", "Fold", "GridSample", "Einsum", "Diag", "CumulativeSum", "Shrink", "SELU",
    "BNLL"))
RULES = ("max", "kl", "percentile", "least-error")


class NotQuantizable(ValueError):
    """The model holds a layer whose weights this writer cannot walk (the bundle is not
    made: int8 is declined for it with this message)."""


@dataclass
class Layer:
    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[int, str]
    data: list[tuple[str, np.ndarray]] = field(default_factory=list)  # ("tagged"|"raw", fp32)

    def int(self, key: int, default: int = 0) -> int:
        value = self.params.get(key)
        return default if value is None else int(float(value))


def read_param(text: str) -> list[Layer]:
    lines = text.strip().splitlines()
    if not lines or lines[0].strip() != "7767517":
        raise NotQuantizable("not an ncnn text .param file")
    layers = []
    for line in lines[2:]:
        parts = line.split()
        if not parts:
            continue
        nb, nt = int(parts[2]), int(parts[3])
        params = dict(kv.split("=", 1) for kv in parts[4 + nb + nt:])
        layers.append(Layer(parts[0], parts[1], parts[4:4 + nb], parts[4 + nb:4 + nb + nt],
                            {int(k): v for k, v in params.items()}))
    return layers


def write_param(layers: list[Layer]) -> str:
    blobs = {b for layer in layers for b in layer.tops}
    lines = ["7767517", f"{len(layers)} {len(blobs)}"]
    for layer in layers:
        params = " ".join(f"{k}={v}" for k, v in layer.params.items())
        lines.append(" ".join([f"{layer.type:<24}", f"{layer.name:<24}", str(len(layer.bottoms)),
                               str(len(layer.tops)), *layer.bottoms, *layer.tops,
                               *([params] if params else [])]))
    return "\n".join(lines) + "\n"


class _Bin:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def raw(self, n: int) -> tuple[str, np.ndarray]:
        a = np.frombuffer(self.data, np.float32, n, self.at).copy()
        self.at += 4 * n
        return "raw", a

    def tagged(self, n: int, layer: Layer) -> tuple[str, np.ndarray]:
        tag = struct.unpack_from("<I", self.data, self.at)[0]
        self.at += 4
        if tag in (TAG_FP32, TAG_FP32_SCALED):
            a = np.frombuffer(self.data, np.float32, n, self.at).copy()
            self.at += 4 * n
        elif tag == TAG_FP16:
            a = np.frombuffer(self.data, np.float16, n, self.at).astype(np.float32)
            self.at += (2 * n + 3) // 4 * 4
        else:
            raise NotQuantizable(f"layer {layer.name}: weights stored as tag {tag:#x}")
        return "tagged", a


def read_weights(layers: list[Layer], data: bytes) -> None:
    """Attach each layer's data, walking the .bin in layer order; NotQuantizable for a layer
    whose layout is not known here (or a walk that does not end at the file's end)."""
    b = _Bin(data)
    for layer in layers:
        layer.data = _layer_data(layer, b)
    if b.at != len(data):
        raise NotQuantizable(f"the .bin has {len(data)} bytes, its layers {b.at}")


def _layer_data(layer: Layer, b: _Bin) -> list[tuple[str, np.ndarray]]:
    """The layer's data in .bin order (each layer's ``load_model`` in ncnn's sources)."""
    t, i = layer.type, layer.int
    if t in CONVOLUTIONS:
        if i(8):
            raise NotQuantizable(f"layer {layer.name} is int8 already")
        if i(28 if t.startswith("Deconvolution") else 19):  # weights from a blob
            return []
        return [b.tagged(i(6), layer)] + ([b.raw(i(0))] if i(5) else [])
    if t == "InnerProduct":
        return [b.tagged(i(2), layer)] + ([b.raw(i(0))] if i(1) else [])
    if t == "Gemm":
        return _gemm_data(layer, b)
    if t in RECURRENT:
        return [b.tagged(n, layer) for n in RECURRENT[t](layer)]
    if t == "MultiHeadAttention":
        if i(18):
            raise NotQuantizable(f"layer {layer.name} is quantized already")
        e = i(0)
        q, k, v = i(2) // max(e, 1), i(3, e), i(4, e)
        return [b.tagged(e * q, layer), b.raw(e), b.tagged(e * k, layer), b.raw(e),
                b.tagged(e * v, layer), b.raw(e), b.tagged(q * e, layer), b.raw(q)]
    if t == "MemoryData":
        n = int(np.prod([i(k) for k in (0, 1, 11, 2) if i(k)] or [0]))
        if not n:
            return []
        return [b.raw(n) if i(21, 1) == 1 else b.tagged(n, layer)]
    if t in RAW:
        return [b.raw(n) for n in RAW[t](layer) if n]
    if t == "DeformableConv2D":
        return [b.tagged(i(6), layer)] + ([b.raw(i(0))] if i(5) else [])
    if t == "BatchNorm":
        return [b.raw(i(0)) for _ in range(4)]
    if t == "Scale":
        n = i(0)
        return [] if n == -233 else [b.raw(n)] + ([b.raw(n)] if i(1) else [])
    if t == "PReLU":
        return [b.raw(i(0))]
    if t == "LayerNorm":
        return [b.raw(i(0)), b.raw(i(0))] if i(2, 1) else []
    if t == "Embed":
        return [b.tagged(i(3), layer)] + ([b.raw(i(0))] if i(2) else [])
    if t not in WEIGHTLESS:
        raise NotQuantizable(f"ncnn layer {t} ({layer.name}): its weight layout is not known "
                             "to edgepack's int8 writer")
    return []


def _directions(layer: Layer) -> int:
    return 2 if layer.int(2) == 2 else 1


def _lstm(layer: Layer) -> list[int]:
    out, size, d = layer.int(0), layer.int(1), _directions(layer)
    hidden = layer.int(3, out)
    sizes = [size, hidden * 4 * d, out * hidden * 4 * d]
    return sizes + ([hidden * out * d] if out != hidden else [])


# recurrent layers: the sizes of their tagged weights (weight_data_size is param 1)
RECURRENT = {
    "GRU": lambda la: [la.int(1), la.int(0) * 4 * _directions(la),
                       la.int(0) * la.int(0) * 3 * _directions(la)],
    "LSTM": _lstm,
    "RNN": lambda la: [la.int(1), la.int(0) * _directions(la),
                       la.int(0) * la.int(0) * _directions(la)],
}
# layers whose data are raw floats: the sizes of their arrays
RAW = {
    "Normalize": lambda la: [la.int(3)],
    "Padding": lambda la: [la.int(6)],
    "Bias": lambda la: [la.int(0)],
    "InstanceNorm": lambda la: [la.int(0)] * 2 if la.int(2, 1) else [],
    "GroupNorm": lambda la: [la.int(1)] * 2 if la.int(3, 1) else [],
    "RMSNorm": lambda la: [la.int(0)] if la.int(2, 1) else [],
}
# Gemm's constant C by its broadcast type (param 10): the number of values
GEMM_C = {0: lambda m, n: 1, 1: lambda m, n: m, 2: lambda m, n: m, 3: lambda m, n: n * m,
          4: lambda m, n: n}


def _gemm_data(layer: Layer, b: _Bin) -> list[tuple[str, np.ndarray]]:
    """A, B and C where constant (params 4, 5, 6; M, N, K are 7, 8, 9)."""
    i = layer.int
    if i(18) or i(19):
        raise NotQuantizable(f"layer {layer.name} is quantized already")
    m, n, k = i(7), i(8), i(9)
    data = []
    if i(4):
        data.append(b.tagged(m * k, layer))
    if i(5):
        data.append(b.tagged(k * n, layer))
    if i(6) and i(10) != -1:
        data.append(b.tagged(GEMM_C[i(10)](m, n), layer))
    return data


def round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantized(x: np.ndarray, scale) -> np.ndarray:
    return np.clip(round_half_away(x * scale), -127, 127)


# --------------------------------------------------------------------------- calibration
def thresholds(samples: dict[str, list[np.ndarray]], rule: str) -> dict[str, float]:
    """Per blob, the |x| beyond which values are clipped, by ``rule`` (RULES)."""
    out = {}
    for blob, values in samples.items():
        a = np.abs(np.concatenate([v.ravel() for v in values]))
        absmax = float(a.max()) or 1.0
        nonzero = a[a != 0] if np.any(a != 0) else np.array([absmax])
        candidates = {"max": absmax}
        if rule in ("kl", "least-error"):
            hist = np.bincount(np.minimum((nonzero / absmax * 2048).astype(int), 2047),
                               minlength=2048).astype(np.float64)
            candidates["kl"] = kl_threshold(hist, absmax)
        if rule in ("percentile", "least-error"):
            candidates["percentile"] = float(np.percentile(nonzero, 99.99)) or absmax
        if rule == "least-error":
            candidates["p99.9"] = float(np.percentile(nonzero, 99.9)) or absmax
            some = a if a.size <= 2_000_000 else np.random.default_rng(0).choice(a, 2_000_000)
            out[blob] = min(candidates.values(), key=lambda t: float(np.mean(
                (quantized(some, 127.0 / t) * t / 127.0 - some) ** 2)))
        else:
            out[blob] = candidates[rule]
    return out


def kl_threshold(hist: np.ndarray, absmax: float, target: int = 128) -> float:
    """ncnn2table's KL-divergence threshold over a 2048-bin histogram of |x|."""
    bins = len(hist)
    p = hist / max(hist.sum(), 1)
    best, best_t, eps = np.inf, target, 1e-4
    for t in range(target, bins):
        clipped = p[:t] + eps
        clipped[t - 1] += p[t:].sum()
        edges = np.arange(target + 1) * (t / target)
        cum = np.concatenate([[0.0], np.cumsum(p[:t])])

        def integral(x, cum=cum, t=t):
            i = np.minimum(np.floor(x).astype(int), t - 1)
            return cum[i] + (x - i) * p[i]

        q = (integral(np.minimum(edges[1:], t)) - integral(edges[:-1])) / np.diff(edges)
        width = t / target
        j = np.arange(t, dtype=np.float64)
        c0 = np.minimum((j / width).astype(int), target - 1)
        c1 = np.minimum(((j + 1) / width - 1e-9).astype(int), target - 1)
        expanded = (np.minimum(j + 1, edges[c0 + 1]) - j) * q[c0] + \
            np.where(c1 != c0, (j + 1 - edges[c1]) * q[c1], 0.0) + eps
        kl = float(np.sum(clipped * np.log(clipped / expanded)))
        if kl < best:
            best, best_t = kl, t
    return (best_t + 0.5) * absmax / bins


def blob_samples(param: Path, weights: Path, blobs: Iterable[str],
                 feed: Callable, samples: Iterable) -> dict[str, list[np.ndarray]]:
    """Each blob's values on the samples, from the fp32 model in ncnn itself."""
    import ncnn

    wanted = sorted(set(blobs))
    found: dict[str, list[np.ndarray]] = {b: [] for b in wanted}
    net = ncnn.Net()
    for key in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage"):
        setattr(net.opt, key, False)
    net.opt.num_threads = 1
    if net.load_param(str(param)) or net.load_model(str(weights)):
        raise NotQuantizable("ncnn could not load the fp32 model to calibrate it")
    for sample in samples:
        _extract(net, feed, sample, wanted, found)
    net.clear()
    return found


def _extract(net, feed: Callable, sample, wanted: list[str],
             found: dict[str, list[np.ndarray]]) -> None:
    """One sample through the net, the wanted blobs copied out (no Mat outlives the call:
    ncnn's allocator refuses to be cleared while one is held)."""
    ex = net.create_extractor()
    ex.set_light_mode(False)  # keep the intermediate blobs: several are read per run
    feed(ex, sample)
    for blob in wanted:
        status, mat = ex.extract(blob)
        if status != 0:
            raise NotQuantizable(f"ncnn could not compute blob {blob} to calibrate it")
        found[blob].append(np.array(mat, copy=True).ravel())
        del mat
    del ex


# --------------------------------------------------------------------------- writing
def weight_scales(layer: Layer) -> tuple[int, np.ndarray]:
    """(int8_scale_term, per-channel or per-group weight scales) of a quantizable layer."""
    w = layer.data[0][1]
    if layer.type == "ConvolutionDepthWise":
        groups, term, limit = layer.int(7, 1), 1, 127.0
    else:
        groups, term = layer.int(0), 2
        winograd = layer.type == "Convolution" and layer.int(1) == 3 and \
            layer.int(11, 3) == 3 and all(layer.int(k, 1) == 1 for k in (2, 12, 3, 13))
        limit = 31.0 if winograd else 127.0
    absmax = np.abs(w.reshape(groups, -1)).max(1)
    return term, np.where(absmax == 0, 1.0, limit / np.where(absmax == 0, 1, absmax)) \
        .astype(np.float32)


def sensitivity(layer: Layer, values: list[np.ndarray] | None, threshold: float | None
                ) -> float:
    """How much quantizing the layer costs: the relative RMS error int8 adds to its input
    (its calibrated one; a Gemm's input is quantized at run time and not counted) and to its
    weights (no inference needed)."""
    act = 0.0
    if values is not None and threshold:
        x = np.concatenate([v.ravel() for v in values])
        s = 127.0 / threshold
        act = float(np.sqrt(np.mean((quantized(x, s) / s - x) ** 2) /
                            max(np.mean(x ** 2), 1e-24)))
    if layer.type == "Gemm":
        w = layer.data[0][1]
        ws = np.array([127.0 / max(float(np.abs(w).max()), 1e-30)])
    else:
        _, ws = weight_scales(layer)
        w = layer.data[0][1].reshape(len(ws), -1)
    ws = ws.reshape(-1, 1) if w.ndim > 1 else ws
    wq = quantized(w, ws) / ws
    return act + float(np.sqrt(np.mean((wq - w) ** 2) / max(np.mean(w ** 2), 1e-24)))


def quantizable(layers: list[Layer]) -> list[Layer]:
    """The layers this writer quantizes: convolutions and inner products (input scales
    calibrated) and Gemms of an input by constant weights (input quantized at run time)."""
    return [la for la in layers if la.data and (la.type in QUANTIZABLE or
                                                la.type == "Gemm" and _gemm_weights(la))]


def write_int8(layers: list[Layer], input_scales: dict[str, float], keep: set[str]
               ) -> tuple[str, bytes, list[str]]:
    """The int8 model's .param text and .bin bytes: every quantizable layer (a convolution or
    inner product whose input has a scale, a Gemm by constant weights), but the layers named
    in ``keep`` (left in fp32); and the layers quantized."""
    out, done = bytearray(), []
    for layer in layers:
        if layer.type == "Gemm" and layer.name not in keep and _gemm_weights(layer):
            out += _gemm_int8(layer)
            done.append(layer.name)
            continue
        scale = input_scales.get(layer.bottoms[0]) if layer.bottoms else None
        if layer.type not in QUANTIZABLE or layer.name in keep or scale is None \
                or not layer.data:
            for kind, a in layer.data:
                out += _fp32(kind, a)
            continue
        term, ws = weight_scales(layer)
        layer.params[8] = str(term)
        w = layer.data[0][1].reshape(len(ws), -1)
        out += _int8(quantized(w, ws[:, None]).astype(np.int8).ravel())
        for kind, a in layer.data[1:]:
            out += _fp32(kind, a)
        out += ws.tobytes() + np.float32(scale).tobytes()
        done.append(layer.name)
    return write_param(layers), bytes(out), done


def _gemm_weights(layer: Layer) -> bool:
    """A Gemm of an input by constant weights (B), as a linear layer is written."""
    return bool(layer.int(5)) and not layer.int(4)


def _gemm_int8(layer: Layer) -> bytes:
    """A Gemm's weights in int8 as ncnn2int8 writes them: B as [N, K] (transB 1), one scale
    for all of B, ``quantize_term`` 2; ncnn quantizes its input at run time."""
    n, k = layer.int(8), layer.int(9)
    w = layer.data[0][1]
    w = w.reshape(n, k) if layer.int(3) else w.reshape(k, n).T
    absmax = float(np.abs(w).max())
    scale = np.float32(1.0 if absmax == 0 else 127.0 / absmax)
    layer.params[3], layer.params[18] = "1", "2"
    body = _int8(quantized(np.ascontiguousarray(w), scale).astype(np.int8).ravel())
    for kind, a in layer.data[1:]:
        body += _fp32(kind, a)
    return body + scale.tobytes()


def _int8(a: np.ndarray) -> bytes:
    b = struct.pack("<I", TAG_INT8) + a.tobytes()
    return b + b"\0" * (-len(b) % 4)


def _fp32(kind: str, a: np.ndarray) -> bytes:
    body = a.astype(np.float32).tobytes()
    return body if kind == "raw" else struct.pack("<I", TAG_FP32) + body
