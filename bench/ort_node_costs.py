"""What one ONNX Runtime node costs at the shapes of a batch-64 training step (k = 50; 111
distinct rows, 97 lagging rows, 10,651 Adam values, as a step of `gen-data --rows 1000000
--customers 100000 --products 2000` has), with the trainer's session settings (one thread,
sequential, `ORT_ENABLE_LAYOUT` = `ort`'s `Level3`, deterministic compute, denormals as zero).

Each case is timed in a graph holding one copy of the node and in one holding 21 copies (every
copy a graph output, common subexpression elimination off); the difference over 20 is the
node's cost, without the run's fixed cost. Thread CPU time, inputs and outputs bound once
(`IOBinding`), median of 5 × 300 runs. BENCHMARKS.md ("The optimizer's update in Rust") has a
run of it.

    python bench/ort_node_costs.py [SUBSTRING ...]   # only the cases whose name contains one
"""
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

rng = np.random.default_rng(0)


def floats(*shape, low=0.1):
    return rng.uniform(low, 1.0, shape).astype(np.float32)


def condition(*shape):
    return rng.uniform(size=shape) > 0.3


# name: (operator, inputs, attributes)
CASES = {
    "Gemm dh·W1ᵀ transB [64,50]x[100,50]": ("Gemm", {"a": floats(64, 50), "b": floats(100, 50)}, {"transB": 1}),
    "MatMul dh·W1ᵀ given [64,50]x[50,100]": ("MatMul", {"a": floats(64, 50), "b": floats(50, 100)}, {}),
    "Gemm xᵀ·dh transA [64,100]x[64,50]": ("Gemm", {"a": floats(64, 100), "b": floats(64, 50)}, {"transA": 1}),
    "MatMul xᵀ·dh given [100,64]x[64,50]": ("MatMul", {"a": floats(100, 64), "b": floats(64, 50)}, {}),
    "Gemm x·W1+b [64,100]x[100,50]": ("Gemm", {"a": floats(64, 100), "b": floats(100, 50), "c": floats(50)}, {}),
    "Gemm aᵀ·dy transA [64,50]x[64,1]": ("Gemm", {"a": floats(64, 50), "b": floats(64, 1)}, {"transA": 1}),
    "Gemm dy·w2ᵀ transB [64,1]x[50,1]": ("Gemm", {"a": floats(64, 1), "b": floats(50, 1)}, {"transB": 1}),
    "Mul 10651": ("Mul", {"a": floats(10651), "b": floats(10651)}, {}),
    "Mul 10651 by a scalar": ("Mul", {"a": floats(10651), "b": floats()}, {}),
    "Sqrt 10651": ("Sqrt", {"a": floats(10651)}, {}),
    "Div 10651": ("Div", {"a": floats(10651), "b": floats(10651)}, {}),
    "Mul [97,50]": ("Mul", {"a": floats(97, 50), "b": floats(97, 50)}, {}),
    "Mul broadcast [97,50]x[97,1]": ("Mul", {"a": floats(97, 50), "b": floats(97, 1)}, {}),
    "Add broadcast [97,1]+[97,50]": ("Add", {"a": floats(97, 1), "b": floats(97, 50)}, {}),
    "Split [97,6] into 6": ("Split", {"a": floats(97, 6)}, {"axis": 1, "num_outputs": 6}),
    "Concat of 5 parts, 10651": ("Concat", {"a": floats(5550), "b": floats(5000), "c": floats(50), "d": floats(50), "e": floats(1)}, {"axis": 0}),
    "Mul of one value": ("Mul", {"a": floats(1), "b": floats()}, {}),
    "Mul [64,100]": ("Mul", {"a": floats(64, 100), "b": floats(64, 100)}, {}),
    "Sign [64,50]": ("Sign", {"a": floats(64, 50)}, {}),
    "Relu [64,50]": ("Relu", {"a": floats(64, 50, low=-1.0)}, {}),
    "Greater [64,50] than a scalar": ("Greater", {"a": floats(64, 50, low=-1.0), "b": floats()}, {}),
    "Where [64,50]": ("Where", {"c": condition(64, 50), "a": floats(64, 50), "b": floats()}, {}),
    "Where [64,1]": ("Where", {"c": condition(64, 1), "a": floats(64, 1), "b": floats()}, {}),
    "GreaterOrEqual [64,1]": ("GreaterOrEqual", {"a": floats(64, 1), "b": floats()}, {}),
    "Max [64,1] with a scalar": ("Max", {"a": floats(64, 1), "b": floats()}, {}),
    "ReduceSum [64,50] over the batch": ("ReduceSum", {"a": floats(64, 50), "axes": np.array([0], np.int64)}, {"keepdims": 0}),
    "Transpose [64,100]": ("Transpose", {"a": floats(64, 100)}, {}),
}

ELEMENT_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64, np.dtype(np.bool_): TensorProto.BOOL}


def model(operator, inputs, attributes, copies):
    declared = [helper.make_tensor_value_info(name, ELEMENT_TYPES[value.dtype], list(value.shape)) for name, value in inputs.items()]
    output_type = TensorProto.BOOL if operator.startswith("Greater") else TensorProto.FLOAT
    outputs_per_node = attributes.get("num_outputs", 1)
    nodes, outputs = [], []
    for copy in range(copies):
        names = [f"out_{copy}_{index}" for index in range(outputs_per_node)]
        nodes.append(helper.make_node(operator, list(inputs), names, **attributes))
        outputs.extend(helper.make_tensor_value_info(name, output_type, None) for name in names)
    graph = helper.make_model(helper.make_graph(nodes, "node_cost", declared, outputs), opset_imports=[helper.make_opsetid("", 18)])
    graph.ir_version = 9
    return graph.SerializeToString()


def bound_session(serialized, inputs):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_LAYOUT
    options.use_deterministic_compute = True
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    options.add_session_config_entry("optimization.disable_specified_optimizers", "CommonSubexpressionElimination")
    session = ort.InferenceSession(serialized, options, providers=["CPUExecutionProvider"])
    binding = session.io_binding()
    for name, value in inputs.items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value))
    for output in session.get_outputs():
        binding.bind_output(output.name, "cpu")
    return session, binding


def microseconds_per_run(session, binding):
    for _ in range(100):
        session.run_with_iobinding(binding)
    rounds = []
    for _ in range(5):
        started = time.thread_time_ns()
        for _ in range(300):
            session.run_with_iobinding(binding)
        rounds.append((time.thread_time_ns() - started) / 300 / 1e3)
    return statistics.median(rounds)


wanted = sys.argv[1:]
for name, (operator, inputs, attributes) in CASES.items():
    if wanted and not any(part in name for part in wanted):
        continue
    one = microseconds_per_run(*bound_session(model(operator, inputs, attributes, 1), inputs))
    many = microseconds_per_run(*bound_session(model(operator, inputs, attributes, 21), inputs))
    print(f"{name:40s} {(many - one) / 20:6.2f} µs per node   (a run of one node: {one:.1f} µs)")
