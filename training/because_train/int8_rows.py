"""The fused graph with int8 MatMuls whose answers do not depend on the batch (issue 11).

onnxruntime's `quantize_dynamic` (DynamicQuantizeMatMul) picks one activation scale for the whole
input tensor, that is for every row of the batch together: a text's logits then change with the
texts batched beside it (446 answers of the service differed between load levels in a bench run).
Here every MatMul with a constant weight W [K, N] becomes

    amax  = max(ReduceMax(|x|, last axis), tiny)             one scale per row (token), [..., 1]
    xq    = QuantizeLinear(x / amax, 1/127, 128)             uint8, zero point 128
    acc   = MatMulInteger(xq, Wq, 128)                       int32; Wq int8, per column
    y     = Cast(acc) * amax * (colmax(|W|) / 127^2)

so a row's result depends on that row alone, bit for bit (the tests check a text alone against the
same text in a batch). Weights are symmetric int8 per output column. uint8 activations, because
ONNX Runtime's CPU MatMulInteger has fast kernels for u8 x s8 and not for s8 x s8 (measured on the
prefill below: 27 ms with int8 activations, 3.2 ms with uint8). The extra nodes cost about a quarter of the int8 speed-up: on the 2-core box, one thread,
a 3 x 35-token prefill took 4.4 ms in fp32, 2.8 ms here and 2.2 ms with DynamicQuantizeMatMul; a
B=25 decode step 3.0, 1.7 and 1.3 ms.
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def quantize_rows(src: Path, dst: Path) -> Path:
    """Writes `src` (a float32 ONNX graph) to `dst` with each constant-weight MatMul in per-row int8."""
    model = onnx.load(str(src))
    graph = model.graph
    weights = {i.name: i for i in graph.initializer}
    added: list[onnx.TensorProto] = []

    def const(name: str, value: np.ndarray) -> str:
        added.append(numpy_helper.from_array(value, name))
        return name

    step = const("int8_rows.step", np.array(1 / 127, dtype=np.float32))
    zero = const("int8_rows.zero_point", np.array(128, dtype=np.uint8))
    tiny = const("int8_rows.tiny", np.array(1e-12, dtype=np.float32))
    axes = [-1]
    quantized: set[str] = set()
    nodes: list[onnx.NodeProto] = []

    def make(op: str, inputs: list[str], output: str, **attrs: object) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=f"{output}.{op}", **attrs))
        return output

    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in weights:
            nodes.append(node)
            continue
        w = numpy_helper.to_array(weights[node.input[1]]).astype(np.float32)
        colmax = np.maximum(np.abs(w).max(axis=0), 1e-12)
        wq = np.clip(np.round(w / colmax * 127), -127, 127).astype(np.int8)
        quantized.add(node.input[1])
        x, y, p = node.input[0], node.output[0], f"{node.output[0]}.int8"
        wq_name = const(f"{p}.weight", wq)
        out_scale = const(f"{p}.weight_scale", (colmax / 127**2).astype(np.float32))

        absx = make("Abs", [x], f"{p}.abs")
        amax = make("ReduceMax", [absx], f"{p}.amax0", axes=axes, keepdims=1)
        amax = make("Max", [amax, tiny], f"{p}.amax")
        scaled = make("Div", [x, amax], f"{p}.unit")
        xq = make("QuantizeLinear", [scaled, step, zero], f"{p}.xq")
        acc = make("MatMulInteger", [xq, wq_name, zero], f"{p}.acc")
        accf = make("Cast", [acc], f"{p}.accf", to=TensorProto.FLOAT)
        rows = make("Mul", [accf, amax], f"{p}.rows")
        make("Mul", [rows, out_scale], y)
    del graph.node[:]
    graph.node.extend(nodes)
    kept = [i for i in graph.initializer if i.name not in quantized]
    del graph.initializer[:]
    graph.initializer.extend(kept + added)
    onnx.save(model, str(dst))
    return dst
