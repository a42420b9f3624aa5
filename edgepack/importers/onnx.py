"""Load and validate an ONNX model; fix dynamic input dimensions; describe it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError

from edgepack.artifact import ModelArtifact, TensorSpec, guess_layout, sha256_file
from edgepack.errors import ModelError, ShapeError, first_line


def fixed_input_arrays(inputs: list[TensorSpec], fixed: dict[str, tuple[float, ...]]
                       ) -> dict[str, np.ndarray]:
    """Each fixed input's value as an array of the input's dtype and (static) shape."""
    specs = {s.name: s for s in inputs}
    arrays = {}
    for name, values in fixed.items():
        if name not in specs:
            raise ShapeError(f"--fix-input names '{name}', but the model's inputs are: "
                             f"{', '.join(specs)}")
        spec = specs[name]
        dtype = np.dtype(spec.dtype)
        if dtype.kind in "iub" and not all(float(v).is_integer() for v in values):
            raise ShapeError(f"--fix-input {name}: input '{name}' is {spec.dtype}, so its value "
                             f"must be whole numbers, not {', '.join(map(str, values))}")
        size = int(np.prod(spec.shape)) if spec.shape else 1
        if len(values) not in (1, size):
            raise ShapeError(f"--fix-input {name}: {len(values)} values for input '{name}' of "
                             f"shape {spec.shape_str()}: give one value or {size}")
        arr = np.asarray(values, dtype=np.float64)
        arr = np.full(spec.shape, arr[0]) if len(values) == 1 else arr.reshape(spec.shape)
        arrays[name] = arr.astype(dtype)
    return arrays


def read_onnx(path: Path) -> onnx.ModelProto:
    """Read and fully check an ONNX file. ModelError says what is wrong with it."""
    if not path.exists():
        raise ModelError(f"model file {path} does not exist")
    if not path.is_file():
        raise ModelError(f"model path {path} is not a file")
    try:
        model = onnx.load(str(path))
    except (DecodeError, ValueError, RuntimeError, OSError) as e:
        raise ModelError(
            f"{path} is not a readable ONNX model ({type(e).__name__}: {first_line(e)}); "
            "is the file complete and really ONNX?"
        ) from None
    except onnx.checker.ValidationError as e:  # external data missing or outside the folder
        raise ModelError(f"{path}: {first_line(e)}; keep the model's external data files "
                         "beside it") from None
    _check_opsets(model, path)
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ModelError(
            f"{path} is not a valid ONNX model: {first_line(e)}; re-export it or check the file "
            "is complete"
        ) from None
    if not model.graph.input or not model.graph.output:
        raise ModelError(f"{path} has no graph inputs or outputs; is it really an ONNX model?")
    return model


def exported_problem(path: Path) -> str | None:
    """Why an ONNX file an exporter wrote is not a valid model, or None: the checker's first
    line, without the file's path (a temporary one, meaningless to the user)."""
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # whatever the checker or the parser raises
        return first_line(e).replace(str(path), "the exported model")
    return None


def _check_opsets(model: onnx.ModelProto, path: Path) -> None:
    newest = onnx.defs.onnx_opset_version()
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version > newest:
            raise ModelError(
                f"{path} declares opset {opset.version} of the default ONNX domain, but the "
                f"newest this installation knows is {newest}; re-export the model with "
                f"opset <= {newest} (e.g. torch.onnx.export(..., opset_version={min(newest, 17)}))")
    if model.ir_version > onnx.IR_VERSION:
        raise ModelError(f"{path} has IR version {model.ir_version}, newer than this onnx "
                         f"package reads ({onnx.IR_VERSION}); re-export it or upgrade onnx")



def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs that are real inputs (not initializers listed as inputs, IR < 4)."""
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def tensor_spec(value: onnx.ValueInfoProto) -> TensorSpec:
    ttype = value.type.tensor_type
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(ttype.elem_type)).name
    shape = tuple(
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in ttype.shape.dim
    )
    return TensorSpec(value.name, dtype, shape, guess_layout(shape))


def io_specs(path: Path) -> tuple[list[dict], list[dict]]:
    """An ONNX file's inputs and outputs as manifest entries (TensorSpec dicts)."""
    model = onnx.load(str(path), load_external_data=False)
    return ([dict(tensor_spec(v).to_dict(), onnx_name=v.name, quantization=None)
             for v in graph_inputs(model)],
            [dict(tensor_spec(v).to_dict(), onnx_name=v.name, quantization=None)
             for v in model.graph.output])


def fix_input_shapes(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> onnx.ModelProto:
    """Set the given input shapes and re-infer every other shape in the graph."""
    inputs = {i.name: i for i in graph_inputs(model)}
    for name, shape in shapes.items():
        if name not in inputs:
            raise ShapeError(
                f"--input-shape names '{name}', but the model's inputs are: {', '.join(inputs)}"
            )
        spec = tensor_spec(inputs[name])
        if len(spec.shape) != len(shape):
            raise ShapeError(
                f"--input-shape {name} has {len(shape)} dims, but input '{name}' has rank "
                f"{len(spec.shape)} {spec.shape_str()}"
            )
        for have, want in zip(spec.shape, shape, strict=True):
            if isinstance(have, int) and have > 0 and have != want:
                raise ShapeError(
                    f"--input-shape {name}={','.join(map(str, shape))} conflicts with the model's "
                    f"fixed shape {spec.shape_str()}"
                )
        for dim, size in zip(inputs[name].type.tensor_type.shape.dim, shape, strict=True):
            dim.Clear()
            dim.dim_value = size
    if not shapes:
        return model
    del model.graph.value_info[:]
    for out in model.graph.output:
        for dim in out.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.Clear()
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.shape_inference.InferenceError, RuntimeError) as e:
        raise ShapeError(
            f"the model does not accept the given --input-shape: {first_line(e)}") from None


def import_onnx(
    path: Path, out_path: Path, input_shapes: dict[str, tuple[int, ...]] | None = None
) -> ModelArtifact:
    """Validate ``path``, fix ``input_shapes``, write the reference model to ``out_path``."""
    model = fix_input_shapes(read_onnx(path), input_shapes or {})
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out_path))
    return artifact_for(out_path, model, produced_by="import", parent_sha256=sha256_file(path))


def artifact_for(path: Path, model: onnx.ModelProto, produced_by: str,
                 parent_sha256: str | None = None, notes: tuple[str, ...] = ()) -> ModelArtifact:
    return ModelArtifact(
        path=path, format="onnx",
        inputs=tuple(tensor_spec(i) for i in graph_inputs(model)),
        outputs=tuple(tensor_spec(o) for o in model.graph.output),
        sha256=sha256_file(path), produced_by=produced_by, parent_sha256=parent_sha256,
        notes=notes,
    )


@dataclass
class OnnxSummary:
    """What ``edgepack inspect`` shows about an ONNX model."""

    path: Path
    sha256: str
    size_bytes: int
    ir_version: int
    opsets: dict[str, int]
    producer: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    op_histogram: dict[str, int]
    parameters: int
    parameter_bytes: int

    def to_dict(self) -> dict:
        return {
            "path": str(self.path), "sha256": self.sha256, "size_bytes": self.size_bytes,
            "ir_version": self.ir_version, "opsets": self.opsets, "producer": self.producer,
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
            "op_histogram": self.op_histogram, "parameters": self.parameters,
            "parameter_bytes": self.parameter_bytes,
        }


def summarize_onnx(path: Path) -> OnnxSummary:
    """Read, check and describe an ONNX model (ModelError if it is not valid)."""
    model = read_onnx(path)
    ops = Counter(n.op_type for n in model.graph.node)
    params = nbytes = 0
    for init in model.graph.initializer:
        count = int(np.prod(init.dims)) if init.dims else 1
        params += count
        nbytes += count * np.dtype(onnx.helper.tensor_dtype_to_np_dtype(init.data_type)).itemsize
    return OnnxSummary(
        path=path, sha256=sha256_file(path), size_bytes=path.stat().st_size,
        ir_version=model.ir_version,
        opsets={(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        inputs=[tensor_spec(i) for i in graph_inputs(model)],
        outputs=[tensor_spec(o) for o in model.graph.output],
        op_histogram=dict(ops.most_common()), parameters=params, parameter_bytes=nbytes,
    )
