"""Times one run of the train stage's generated ONNX graphs (training_model.onnx and
optimizer_model.onnx from a model folder) in ONNX Runtime at the shapes of a batch-64 step,
with the trainer's session settings (one thread, sequential). Prints µs per run (best of five
rounds of 1,000 runs) and the node count, so two builds' graphs can be compared side by side:

    python bench/train_graphs.py OLD_MODEL_DIR NEW_MODEL_DIR ...

The shapes are those of `gen-data --rows 1000000 --customers 100000 --products 2000` at batch
64: a batch uses ~127 distinct rows and the next batch ~126 more. Inputs are random (timing
does not depend on the values); symbolic dimensions are resolved by name.
"""
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort

K = 50
BATCH = 64
BATCH_ROWS = 127
NEXT_ROWS = 126
DENSE = 2 * K * K + 2 * K + 1
DIMS = {
    "training_model.onnx": {"batch": BATCH, "rows": BATCH_ROWS},
    # Before: the batch's rows and the next batch's in one `rows` tensor, dense apart.
    # After: `params` = the batch's rows and the dense layers, `rows` = the next batch's.
    "optimizer_model.onnx": {"rows": BATCH_ROWS + NEXT_ROWS, "dense": DENSE},
}
# The optimizer's lagging rows are `rows` up to 8f0a502, `lagging_rows` since the fused step graph.
DIMS_AFTER = {"params": BATCH_ROWS * K + DENSE, "rows": NEXT_ROWS, "lagging_rows": NEXT_ROWS}


def feeds(session, dims):
    rng = np.random.default_rng(0)
    values = {}
    for node in session.get_inputs():
        shape = [d if isinstance(d, int) else dims[d] for d in node.shape]
        if node.type == "tensor(int64)":
            values[node.name] = np.asarray(rng.integers(0, 100, shape), np.int64)
        else:
            values[node.name] = np.asarray(np.abs(rng.standard_normal(shape)) * 1e-3, np.float32)
    return values


def time_run(path, dims):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    inputs = feeds(session, dims)
    for _ in range(200):
        session.run(None, inputs)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(1000):
            session.run(None, inputs)
        best = min(best, (time.perf_counter() - started) / 1000 * 1e6)
    return best


for folder in sys.argv[1:]:
    for name, dims in DIMS.items():
        path = f"{folder}/{name}"
        model = onnx.load(path, load_external_data=False)
        names = {node.name for node in model.graph.input}
        if "params" in names:
            dims = DIMS_AFTER
        print(f"{path}: {len(model.graph.node)} nodes, {time_run(path, dims):.1f} µs per run")
