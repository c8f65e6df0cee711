"""Writes bench/matmul.onnx: one fp32 MatMul, Y[M, N] = A[M, K] @ B[K, N], all dimensions symbolic.

`npm run bench` times it with onnxruntime-node (2 intra-op threads, like the engine) to measure this
CPU's fp32 matrix-multiply rate, the yardstick for the share of it the engine reaches.

    training/.venv/bin/python bench/make-matmul.py
"""

from pathlib import Path

import onnx
from onnx import TensorProto, helper


def main() -> None:
    a = helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", "K"])
    b = helper.make_tensor_value_info("B", TensorProto.FLOAT, ["K", "N"])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", "N"])
    graph = helper.make_graph([helper.make_node("MatMul", ["A", "B"], ["Y"])], "matmul", [a, b], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="because-bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    out = Path(__file__).resolve().parent / "matmul.onnx"
    onnx.save(model, out)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
