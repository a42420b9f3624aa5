"""OpenVINO target: IR bundles (``model.xml`` + ``model.bin``) for the CPU plugin.

* fp32: no weight compression; the bundle pins ``INFERENCE_PRECISION_HINT=f32``, since the
  CPU plugin otherwise runs bf16 (AVX512-BF16 hosts) or f16 (ARM) and results would depend
  on the CPU, and ``DYNAMIC_QUANTIZATION_GROUP_SIZE=0``, since the plugin otherwise quantizes
  the activations of MatMuls whose weights are stored compressed (int8 with Cast·Mul, where
  its CPU has the kernels for it). Where the device's default differs, a ``device-default``
  variant is built and measured beside it, with the fp16 budget.
* fp16: weights compressed to fp16; the plugin's default inference precision.
* int8: ``nncf.quantize`` calibrated on the dataset (transformer model type when the graph
  has attention-like MatMul + Softmax).
* int8-dynamic: ``nncf.compress_weights`` (weight-only int8).
* int4-weights: ``nncf.compress_weights`` INT4_SYM in groups of 32 (weight-only int4; NNCF
  keeps the embedding and the last layer, and any weight it cannot group, in int8).
"""

from __future__ import annotations

from pathlib import Path

from edgepack.data import Dataset
from edgepack.errors import DataError
from edgepack.profiles import DeviceProfile
from edgepack.settings import PRECISIONS, Precision
from edgepack.targets.base import LowerContext, Lowered, Strategy, Target, TargetOption

# OpenVINO's aarch64 wheels are manylinux_2_35; x86-64 ones manylinux_2_28
MIN_GLIBC = {"aarch64": "2.35", "x86_64": "2.28"}
DEVICE_DEFAULT = "device-default"
# what an fp32 bundle pins: f32 arithmetic everywhere (the CPU plugin's default is bf16/f16 on
# some CPUs), and no dynamic quantization of the activations of MatMuls whose weights are
# stored compressed (the plugin's default where the CPU has int8 kernels: 4e-6 → 0.04 max
# difference on a weight-compressed transformer)
FP32_CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": "0"}


def device_default_precision(profile: DeviceProfile) -> str:
    """What the CPU plugin runs on this device when nothing is pinned: f16 on ARM cores
    with half-precision arithmetic (the profile's features list asimdhp, e.g. Cortex-A76;
    a profile that lists no features is assumed to have it), f32 on those without (e.g.
    Cortex-A72: counted under emulation, the plugin then runs f32)."""
    if profile.arch == "aarch64":
        return "f16" if "asimdhp" in profile.features or not profile.features else "f32"
    return "bf16" if "bf16" in profile.cpu.lower() or "amx" in profile.cpu.lower() else "f32"


def _is_transformer(model) -> bool:
    ops = {op.get_type_name() for op in model.get_ops()}
    return "Softmax" in ops and "MatMul" in ops


class OpenvinoTarget(Target):
    name = "openvino"
    packages = ("openvino", "nncf")
    module = "openvino"
    extra = "openvino"
    runtime = "openvino"
    backend = "edgepack.device.backends.openvino"
    precisions = PRECISIONS  # int4-weights: nncf.compress_weights INT4_SYM
    options = (
        TargetOption("preset", "--preset", "openvino int8: NNCF preset, performance or mixed "
                     "(default: mixed for transformers, else performance).", str,
                     ("performance", "mixed")),
    )

    def check_profile(self, profile: DeviceProfile) -> str | None:
        need = MIN_GLIBC.get(profile.arch, "2.35")
        if not profile.glibc_at_least(need):
            return (f"openvino's {profile.arch} wheels need glibc >= {need}, but profile "
                    f"'{profile.name}' has glibc {profile.glibc} ({profile.os}); use the ort "
                    "target there, or a profile for a newer OS")
        return super().check_profile(profile)

    def strategies(self, precision: str, profile: DeviceProfile) -> list[Strategy]:
        # int8: NNCF's post-training quantization; when it misses the budget, NNCF's accuracy
        # control, which returns the most harmful layers to float until the budget holds
        # first the source model itself, for formats OpenVINO reads (no ONNX hop)
        native = [Strategy("convert-source", source_formats=SOURCE_FORMATS)]
        if precision == Precision.INT8:
            return [*native, Strategy("nncf"),
                    Strategy("nncf-accuracy-control", accuracy_control=True),
                    Strategy("convert-source +accuracy-control", source_formats=SOURCE_FORMATS,
                             accuracy_control=True)]
        if precision == Precision.INT4_WEIGHTS:
            from edgepack.stages.quantize import INT4_KEEP_SHARES, int4_strategy_name

            return [*native, *(Strategy(int4_strategy_name(share), keep_share=share)
                               for share in INT4_KEEP_SHARES)]
        return [*native, Strategy("default")]

    def variants(self, precision: str, profile: DeviceProfile) -> list[str | None]:
        if precision == Precision.FP32 and device_default_precision(profile) != "f32":
            return [None, DEVICE_DEFAULT]
        return [None]

    def lower(self, model: Path, precision: str, profile: DeviceProfile,
              calib: Dataset | None, out_dir: Path, ctx: LowerContext) -> Lowered:
        import openvino as ov

        ov_model = _from_source(ctx.source) if ctx.source else ov.convert_model(str(model))
        notes, compress = [], precision == Precision.FP16
        if precision == Precision.INT8:
            if calib is None:
                raise DataError("static int8 needs calibration data (--calib or --data)")
            if ctx.strategy.accuracy_control:
                ov_model, notes = _quantize_with_control(ov_model, calib,
                                                         ctx.options.get("preset"), ctx.tolerance)
            else:
                ov_model, notes = _quantize(ov_model, calib, ctx.options.get("preset"))
        elif precision == Precision.INT8_DYNAMIC:
            import nncf

            ov_model = nncf.compress_weights(ov_model, mode=nncf.CompressWeightsMode.INT8_ASYM)
            notes = ["weight-only int8 (nncf.compress_weights INT8_ASYM); activations in the "
                     "plugin's inference precision"]
        elif precision == Precision.INT4_WEIGHTS:
            ov_model, notes = _compress_int4(ov_model, ctx.strategy.keep_share)
        _number_generated_names(ov_model)
        ov.save_model(ov_model, str(out_dir / "model.xml"), compress_to_fp16=compress)
        device = device_default_precision(profile)
        config = {}
        if precision == Precision.FP32 and ctx.variant != DEVICE_DEFAULT:
            config.update(FP32_CONFIG)
            notes.append(f"inference precision pinned to f32 (the device's default is {device}) "
                         "and dynamic quantization of compressed-weight MatMuls off")
        elif device == "f32":
            # what the device runs anyway; pinned so that a bf16-capable build host measures
            # the device's numbers, not its own
            config["INFERENCE_PRECISION_HINT"] = "f32"
            notes.append(f"inference precision pinned to f32, {profile.name}'s default")
        else:
            notes.append(f"inference precision: the CPU plugin's default (on {profile.name}: "
                         f"{device})")
        need = MIN_GLIBC.get(profile.arch, "2.35")
        notes.append(f"openvino's {profile.arch} wheels need glibc >= {need} "
                     f"(this profile: {profile.glibc}); older systems cannot pip-install them")
        inputs, outputs, io_notes = _io(ov_model, model, ctx.source)
        notes += io_notes
        return Lowered("model.xml", ["model.xml", "model.bin"], inputs, outputs,
                       runtime_options={"openvino_config": config,
                                        "device_inference_precision": config.get(
                                            "INFERENCE_PRECISION_HINT", device)},
                       notes=notes)


def _compress_int4(ov_model, keep_share: float):
    """Weight-only int4 (INT4_SYM, one scale per 32 weights), as Optimum-Intel and Olive
    export small transformers; ``keep_share`` of the weights, those int4 harms most by NNCF's
    data-free measure, stay in int8 (its ``ratio``); the note counts what is in int8."""
    import nncf

    from edgepack.stages.quantize import INT4_BLOCK

    compressed = nncf.compress_weights(ov_model, mode=nncf.CompressWeightsMode.INT4_SYM,
                                       group_size=INT4_BLOCK, ratio=1.0 - keep_share)
    kinds: dict[str, int] = {}
    for op in compressed.get_ordered_ops():
        if op.get_type_name() == "Constant":
            kind = op.get_element_type().get_type_name()
            if kind in ("i4", "u4", "i8", "u8"):
                kinds[kind] = kinds.get(kind, 0) + 1
    if not kinds.get("i4") and not kinds.get("u4"):
        raise RuntimeError("nncf.compress_weights left no weight in int4 (none it can group)")
    held = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    return compressed, [f"weight-only int4 (nncf.compress_weights INT4_SYM, group "
                        f"{INT4_BLOCK}, ratio {1.0 - keep_share:g}): weight constants {held}; "
                        "activations in the plugin's inference precision"]


def _number_generated_names(ov_model) -> None:
    """Names OpenVINO generates (``Convert_38610``) count every node the process has made, so
    the same build wrote a different model.xml from one run to the next: number them by their
    place in the graph instead. Names from the model itself are kept."""
    for i, op in enumerate(ov_model.get_ordered_ops()):
        kind, _, number = op.get_friendly_name().rpartition("_")
        if kind == op.get_type_name() and number.isdigit():
            op.set_friendly_name(f"{kind}_{i}")


def _quantize(ov_model, calib: Dataset, preset: str | None):
    import nncf

    transformer = _is_transformer(ov_model)
    # symmetric everywhere (performance) unless asked, or a transformer (mixed: asymmetric
    # activations), as NNCF recommends
    preset = preset or ("mixed" if transformer else "performance")
    presets = {"performance": nncf.QuantizationPreset.PERFORMANCE,
               "mixed": nncf.QuantizationPreset.MIXED}
    dataset = nncf.Dataset(list(calib.feeds()))
    quantized = nncf.quantize(
        ov_model, dataset, subset_size=len(calib), preset=presets[preset],
        model_type=nncf.ModelType.TRANSFORMER if transformer else None,
    )
    return quantized, [
        f"int8 (nncf.quantize, {'transformer' if transformer else 'default'} model type, "
        f"{preset} preset) calibrated on {calib.samples} samples ({calib.kind}: {calib.source})"]


SOURCE_FORMATS = ("tflite", "keras", "saved-model", "torch")


def _from_source(source: dict):
    """ov.convert_model on the user's source model (TFLite file, the importer's static
    SavedModel, or the torch module), with the source's I/O names and static shapes."""
    import openvino as ov

    shapes = {i["name"]: i["shape"] for i in source["inputs"]}
    if source["format"] == "torch":
        import torch

        from edgepack.importers.base import Source
        from edgepack.importers.pytorch import load_module

        example = tuple(torch.zeros(i["shape"], dtype=getattr(torch, i["dtype"]))
                        for i in source["inputs"])
        ov_model = ov.convert_model(load_module(Source.from_dict(source)),
                                    example_input=example)
        ov_model.reshape({p: ov.PartialShape(s) for p, s in zip(
            ov_model.inputs, shapes.values(), strict=True)})
    else:
        path = source["native"].get("saved_model") or source["path"]
        ov_model = ov.convert_model(path)
        by_name = {p.get_any_name(): p for p in ov_model.inputs}
        ov_model.reshape({by_name.get(n, ov_model.inputs[i]): ov.PartialShape(s)
                          for i, (n, s) in enumerate(shapes.items())})
    for port, name in zip(ov_model.inputs, shapes, strict=True):
        port.get_tensor().set_names({name})
    _name_outputs(ov_model.outputs, source["outputs"],
                  source.get("output_tensors") or source["outputs"])
    return ov_model


def _name_outputs(ports, names: list[str], tensors: list[str]) -> None:
    """Give each output port the name the source's output has: the port of the source's
    tensor (two outputs may be one tensor, one port then carries both names), else the port
    at its position."""
    for i, (name, tensor) in enumerate(zip(names, tensors, strict=True)):
        port = next((p for p in ports if tensor in p.get_names()), None)
        if port is None and len(ports) == len(names):
            port = ports[i]
        if port is not None:
            port.get_tensor().add_names({name})


def _quantize_with_control(ov_model, calib: Dataset, preset: str | None, tolerance: dict):
    """nncf.quantize_with_accuracy_control, its metric the worst output's cosine to the fp32
    model's outputs over the calibration samples, allowed to drop to the cell's budget."""
    import nncf
    import numpy as np
    import openvino as ov

    from edgepack.device import core

    feeds = list(calib.feeds())
    fp32 = ov.Core().compile_model(ov_model, "CPU", FP32_CONFIG)
    names = [o.get_any_name() for o in fp32.outputs]
    expected = {n: [] for n in names}
    for feed in feeds:
        result = fp32(feed)
        for i, n in enumerate(names):
            expected[n].append(np.array(result[i]))

    def validate(compiled, data) -> tuple[float, None]:
        got = {n: [] for n in names}
        for feed in data:
            result = compiled(feed)
            for i, n in enumerate(names):
                got[n].append(np.array(result[i]))
        cosines = [core.compare(expected[n], got[n]).get("cosine", 0.0) for n in names]
        return float(min(cosines)), None

    transformer = _is_transformer(ov_model)
    preset = preset or ("mixed" if transformer else "performance")
    presets = {"performance": nncf.QuantizationPreset.PERFORMANCE,
               "mixed": nncf.QuantizationPreset.MIXED}
    max_drop = max(0.0, 1.0 - tolerance.get("min_cosine", 0.98))
    quantized = nncf.quantize_with_accuracy_control(
        ov_model, nncf.Dataset(feeds), nncf.Dataset(feeds), validate, max_drop=max_drop,
        drop_type=nncf.DropType.ABSOLUTE, preset=presets[preset], subset_size=len(feeds),
        model_type=nncf.ModelType.TRANSFORMER if transformer else None)
    kept = sum(op.get_type_name() == "FakeQuantize" for op in quantized.get_ops())
    return quantized, [
        f"int8 (nncf.quantize_with_accuracy_control: layers returned to float until the worst "
        f"output's cosine to fp32 dropped at most {max_drop:g} on {calib.samples} calibration "
        f"samples; {kept} quantizers left), {preset} preset"]


def _io(ov_model, model: Path, source: dict) -> tuple[list[dict], list[dict], list[str]]:
    """Manifest entries of the inputs and outputs under the names users feed and read (the
    ONNX model's, or the source's), each with where OpenVINO has it: its position and every
    name its tensor carries (``runtime_index``, ``runtime_names``). The backend looks a
    tensor up by those, since compiling can merge tensors and change which name a port
    reports first (an output lost by name is "the runtime returned no output")."""
    if source:
        wanted = ([i["name"] for i in source["inputs"]], list(source["outputs"]))
    else:
        from edgepack.importers.onnx import io_specs

        ins, outs = io_specs(model)
        wanted = ([i["name"] for i in ins], [o["name"] for o in outs])
    inputs, in_notes = _bind(ov_model.inputs, wanted[0])
    outputs, out_notes = _bind(ov_model.outputs, wanted[1])
    return inputs, outputs, in_notes + out_notes


def _bind(ports, names: list[str]) -> tuple[list[dict], list[str]]:
    """One entry per name, for the port that carries it, else the port at its position (when
    the counts agree); a name no port carries is left out (an input OpenVINO dropped as
    unused) or, for lack of a port, reported by the backend when the bundle runs."""
    entries, notes = [], []
    for i, name in enumerate(names):
        index = next((j for j, p in enumerate(ports) if name in p.get_names()), None)
        if index is None and len(ports) == len(names):
            index = i
            notes.append(f"'{name}' is OpenVINO's tensor {i} "
                         f"({', '.join(sorted(ports[i].get_names())) or 'unnamed'}), bound by "
                         "position")
        if index is not None:
            entries.append({**_spec(ports[index], name), "runtime_index": index,
                            "runtime_names": sorted(ports[index].get_names())})
    return entries, notes


def _spec(port, name: str) -> dict:
    import numpy as np

    shape = [d.get_length() if d.is_static else "?" for d in port.get_partial_shape()]
    dtype = np.dtype(port.get_element_type().to_dtype()).name
    layout = "NCHW" if len(shape) == 4 and shape[1] in (1, 3, 4) else None
    return {"name": name, "dtype": dtype, "shape": shape, "layout": layout, "onnx_name": name,
            "quantization": None}


TARGET = OpenvinoTarget()
