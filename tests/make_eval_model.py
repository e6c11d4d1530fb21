"""Writes a small eval-like ONNX model for warez-pipe's predict/runtime tests.

The graph mirrors the recommender's serving graph: inputs `user` and `product` (float32 [N, 1],
mapped ids), embeddings gathered and concatenated, Dense k + ReLU (`dense_1`), Dense 1
(`dense_2`), output `dense_2/BiasAdd` (float32 [N, 1]). Weights are seeded random numbers,
also written as JSON (keys as in warez-pipe's ModelParams) so the tests can compute the
expected scores with the Rust reference forward pass.

usage: make_eval_model.py OUT_DIR N_CUSTOMERS N_PRODUCTS N_FACTORS SEED
"""

import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main() -> None:
    out_dir, n_customers, n_products, k, seed = sys.argv[1], *map(int, sys.argv[2:6])
    rng = np.random.default_rng(seed)
    weights = {
        "customer_embedding": rng.uniform(-0.5, 0.5, (n_customers, k)),
        "product_embedding": rng.uniform(-0.5, 0.5, (n_products, k)),
        "dense_1/kernel": rng.uniform(-0.5, 0.5, (2 * k, k)),
        "dense_1/bias": rng.uniform(-0.1, 0.1, (k,)),
        "dense_2/kernel": rng.uniform(-0.5, 0.5, (k, 1)),
        "dense_2/bias": np.array([0.25]),
    }
    weights = {name: value.astype(np.float32) for name, value in weights.items()}
    initializers = [numpy_helper.from_array(value, name) for name, value in weights.items()]
    initializers.append(numpy_helper.from_array(np.array([-1, k], dtype=np.int64), "row_shape"))

    nodes = []
    for name, table in (("user", "customer_embedding"), ("product", "product_embedding")):
        nodes += [
            helper.make_node("Cast", [name], [f"{name}_index"], to=TensorProto.INT64),
            helper.make_node("Gather", [table, f"{name}_index"], [f"{name}_rows"], axis=0),
            helper.make_node("Reshape", [f"{name}_rows", "row_shape"], [f"{name}_flat"]),
        ]
    nodes += [
        helper.make_node("Concat", ["user_flat", "product_flat"], ["features"], axis=1),
        helper.make_node("MatMul", ["features", "dense_1/kernel"], ["dense_1/MatMul"]),
        helper.make_node("Add", ["dense_1/MatMul", "dense_1/bias"], ["dense_1/BiasAdd"]),
        helper.make_node("Relu", ["dense_1/BiasAdd"], ["dense_1/Relu"]),
        helper.make_node("MatMul", ["dense_1/Relu", "dense_2/kernel"], ["dense_2/MatMul"]),
        helper.make_node("Add", ["dense_2/MatMul", "dense_2/bias"], ["dense_2/BiasAdd"]),
    ]
    graph = helper.make_graph(
        nodes,
        "eval",
        [
            helper.make_tensor_value_info("user", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("product", TensorProto.FLOAT, ["N", 1]),
        ],
        [helper.make_tensor_value_info("dense_2/BiasAdd", TensorProto.FLOAT, ["N", 1])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    os.makedirs(out_dir, exist_ok=True)
    onnx.save(model, os.path.join(out_dir, "eval_model.onnx"))
    with open(os.path.join(out_dir, "weights.json"), "w") as file:
        json.dump({name: value.ravel().tolist() for name, value in weights.items()}, file)


if __name__ == "__main__":
    main()
