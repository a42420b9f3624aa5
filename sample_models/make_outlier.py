"""Write outlier_digits.onnx: mobilenet_digits with one planted layer whose output has a huge
activation range, so that plain int8 misses its accuracy budget.

Usage (from the repo root): .venv/bin/python sample_models/make_outlier.py
Needs only onnx and numpy; reads mobilenet_digits.onnx beside this script.

The planted layer is a 1x1 Conv ("/planted/Conv") between the global average pool and the
classifier: it multiplies channel 0 by 1000 and leaves the other 63 as they are, and the
classifier's weights for channel 0 are divided by 1000, so the fp32 model computes the same
logits as mobilenet_digits. Under one per-tensor int8 scale the planted tensor's 63 ordinary
channels quantize to almost nothing; leaving that tensor in float restores the accuracy.
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

HERE = Path(__file__).resolve().parent
FACTOR = 1000.0
CHANNEL = 0


def main() -> None:
    model = onnx.load(str(HERE / "mobilenet_digits.onnx"))
    graph = model.graph
    gemm = next(n for n in graph.node if n.op_type == "Gemm")
    pooled = next(n for n in graph.node if n.op_type == "GlobalAveragePool").output[0]
    channels = 64
    scale = np.ones(channels, np.float32)
    scale[CHANNEL] = FACTOR
    weight = np.diag(scale).reshape(channels, channels, 1, 1).astype(np.float32)
    graph.initializer.append(numpy_helper.from_array(weight, "planted.weight"))
    planted = helper.make_node("Conv", [pooled, "planted.weight"], ["/planted/Conv_output_0"],
                               name="/planted/Conv")
    flatten = next(n for n in graph.node if n.op_type == "Flatten")
    flatten.input[0] = "/planted/Conv_output_0"
    nodes = list(graph.node)
    nodes.insert(nodes.index(flatten), planted)
    del graph.node[:]
    graph.node.extend(nodes)
    w = next(i for i in graph.initializer if i.name == gemm.input[1])
    fc = numpy_helper.to_array(w).copy()
    fc[:, CHANNEL] /= FACTOR
    w.CopyFrom(numpy_helper.from_array(fc, w.name))
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(HERE / "outlier_digits.onnx"))
    print(f"wrote {HERE / 'outlier_digits.onnx'}")


if __name__ == "__main__":
    main()
