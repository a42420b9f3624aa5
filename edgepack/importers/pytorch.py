"""PyTorch models: an entry point ``file.py:make_model`` (+ ``--weights`` state dict), a
TorchScript file, or an ExportedProgram (``.pt2``); a pickled whole model only with
``--trust-pickle``. Exported with torch's dynamo exporter, else its TorchScript-based one.
Runs in the main environment (``pip install 'edgepack[torch]'``), in child processes.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import zipfile
from pathlib import Path

import numpy as np

from edgepack.artifact import TensorSpec
from edgepack.device import core
from edgepack.errors import ModelError, first_line
from edgepack.importers.base import Importer, Source, SourceIO

OPSET = 17


class PytorchImporter(Importer):
    format = "torch"
    extra = "torch"
    module = "torch"

    def check(self, source: Source) -> None:
        if source.entry is None and source.path.suffix != ".pt2" and \
                not zipfile.is_zipfile(source.path):
            raise ModelError(f"{source.path} is not a PyTorch file (TorchScript and torch.save "
                             "files are zip archives); is it complete?")
        if source.entry is None and source.path.suffix != ".pt2" and \
                not _is_torchscript(source.path) and not source.trust_pickle:
            raise ModelError(
                f"{source.path} is a pickled PyTorch file, not TorchScript: loading it runs "
                "arbitrary code from the file. Pass the model as an entry point "
                "(edgepack build model.py:make_model --weights weights.pt), save it with "
                "torch.jit.save or torch.export, or pass --trust-pickle if you trust the file")

    def describe(self, source: Source, workdir: Path, timeout: float) -> SourceIO:
        import torch

        if source.path.suffix == ".pt2" and source.entry is None:
            program = torch.export.load(str(source.path))
            inputs = []
            for node in program.graph.nodes:
                if node.op == "placeholder" and node.name in program.graph_signature.user_inputs:
                    val = node.meta.get("val")
                    inputs.append(TensorSpec(node.name, str(val.dtype).replace("torch.", ""),
                                             tuple(int(d) for d in val.shape)))
            return SourceIO(inputs, notes=[f"ExportedProgram, torch {torch.__version__}"])
        module = load_module(source)
        forward = module.forward
        if isinstance(module, torch.jit.ScriptModule):
            names = [a.name for a in forward.schema.arguments[1:]]
        else:
            names = [p.name for p in inspect.signature(forward).parameters.values()
                     if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        return SourceIO([TensorSpec(n, "float32", None) for n in names],
                        notes=[f"torch {torch.__version__}"])

    def export(self, source: Source, inputs: list[TensorSpec], outputs: list[str], dst: Path,
               workdir: Path, timeout: float) -> dict:
        import torch

        args = tuple(torch.from_numpy(_example(s)) for s in inputs)
        names = [s.name for s in inputs]
        if source.path.suffix == ".pt2" and source.entry is None:
            model = torch.export.load(str(source.path))
            count = len(model.graph_signature.user_outputs)
            ways = [("dynamo", True)]
        else:
            model = load_module(source)
            with torch.no_grad():
                count = len(flatten(model(*args)))
            scripted = isinstance(model, torch.jit.ScriptModule)
            ways = [("torchscript", False)] if scripted else [("dynamo", True),
                                                              ("torchscript", False)]
        out_names = [f"output_{i}" for i in range(count)]
        failures = []
        for exporter, dynamo in ways:
            try:
                kwargs = {"external_data": False} if dynamo else {}
                torch.onnx.export(model, args, str(dst), dynamo=dynamo, opset_version=OPSET,
                                  input_names=names, output_names=out_names, **kwargs)
                _check(dst)
                return {"exporter": f"torch.onnx.export(dynamo={dynamo})",
                        "torch": torch.__version__, "outputs": out_names,
                        "fallback_from": failures}
            except Exception as e:  # the next exporter, and the reason this one failed
                failures.append(f"{exporter}: {type(e).__name__}: {first_line(e)}")
        raise ModelError(f"torch could not export {source.display} to ONNX: "
                         + "; ".join(failures))

    def run(self, source: Source, inputs: list[TensorSpec], outputs: list[str], data: Path,
            out: Path, workdir: Path, timeout: float) -> dict:
        import torch

        if source.path.suffix == ".pt2" and source.entry is None:
            model = torch.export.load(str(source.path)).module()
        else:
            model = load_module(source)
        arrays = core.load_npz(data)
        collected: dict[str, list] = {n: [] for n in outputs}
        with torch.no_grad():
            for i in range(core.sample_count({s.name: arrays[s.name] for s in inputs})):
                result = flatten(model(*(torch.from_numpy(np.array(arrays[s.name][i]))
                                         for s in inputs)))
                for name, value in zip(outputs, result, strict=True):
                    collected[name].append(value.detach().numpy())
        np.savez(out, **core.pack(collected))
        return {"framework": f"torch {torch.__version__}"}


def _is_torchscript(path: Path) -> bool:
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") or n == "constants.pkl" for n in z.namelist())


def load_module(source: Source):
    """The nn.Module of an entry point, TorchScript file or (trusted) pickle, in eval mode."""
    import torch

    if source.entry is not None:
        spec = importlib.util.spec_from_file_location("edgepack_user_model", source.path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(source.path.parent))
        try:
            spec.loader.exec_module(module)
            factory = getattr(module, source.entry, None)
            if factory is None or not callable(factory):
                raise ModelError(f"{source.path} defines no function '{source.entry}'")
            model = factory()
        except ModelError:
            raise
        except Exception as e:
            raise ModelError(f"{source.display} raised {type(e).__name__}: {first_line(e)}"
                             ) from None
        finally:
            sys.path.remove(str(source.path.parent))
        if not isinstance(model, torch.nn.Module):
            raise ModelError(f"{source.display} returned a {type(model).__name__}, not a "
                             "torch.nn.Module")
        if source.weights is not None:
            try:
                state = torch.load(str(source.weights), map_location="cpu", weights_only=True)
                model.load_state_dict(state.get("state_dict", state)
                                      if isinstance(state, dict) else state)
            except Exception as e:
                raise ModelError(f"--weights {source.weights}: {type(e).__name__}: "
                                 f"{first_line(e)}") from None
        return model.eval()
    if _is_torchscript(source.path):
        return torch.jit.load(str(source.path), map_location="cpu").eval()
    sys.path.insert(0, str(source.path.parent))  # a pickle names its classes' modules
    try:
        model = torch.load(str(source.path), map_location="cpu", weights_only=False)  # trusted
    except ModuleNotFoundError as e:
        raise ModelError(f"{source.path} refers to module '{e.name}', which cannot be "
                         "imported: put it beside the file or on PYTHONPATH") from None
    finally:
        sys.path.remove(str(source.path.parent))
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"{source.path} holds a {type(model).__name__}, not a torch.nn.Module "
                         "(a state dict needs its model: model.py:make_model --weights FILE)")
    return model.eval()


def flatten(result) -> list:
    """A forward()'s result as a flat list of tensors (tuples, lists and dicts in order)."""
    if isinstance(result, dict):
        return [t for v in result.values() for t in flatten(v)]
    if isinstance(result, list | tuple):
        return [t for v in result for t in flatten(v)]
    return [result]


def _example(spec: TensorSpec) -> np.ndarray:
    rng = np.random.default_rng(0)
    dtype = np.dtype(spec.dtype)
    if dtype.kind == "f":
        return rng.standard_normal(spec.shape).astype(dtype)
    return np.zeros(spec.shape, dtype)


def _check(path: Path) -> None:
    import onnx

    onnx.checker.check_model(onnx.load(str(path)))



IMPORTER = PytorchImporter()
