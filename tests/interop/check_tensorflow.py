"""Loads warez-pipe's TensorFlow artifacts with the real TensorFlow and compares predictions.

Usage: check_tensorflow.py CASES.json

CASES.json: {"graph": path of a binary GraphDef, or null,
             "avro": path of a RecommenderModel container file (its tensorFlowModel is imported), or null,
             "saved_model": path of a SavedModel folder, or null,
             "pairs": [[customer, product], ...],
             "references": {label: [prediction for each pair], ...}, "tolerance": 1e-5}

Every given artifact is loaded in every way the serving side may load it: the GraphDef imported
into a session, the SavedModel with `tf.saved_model.load`, `tf.compat.v1.saved_model.loader.load`
and TensorFlow's C API (`TF_LoadSessionFromSavedModel`, the C++ loader TensorFlow Serving uses,
reached through ctypes). Each one's predictions for `pairs` must match every reference within
the tolerance. Prints one line per check; exits 1 on the first mismatch.
"""

import ctypes
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

INPUTS = ("user", "product")
OUTPUT = "dense_2/BiasAdd"


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def compare(label, predictions, references, tolerance):
    predictions = np.asarray(predictions, dtype=np.float32).reshape(-1)
    for reference, expected in references.items():
        if predictions.shape != expected.shape:
            fail(f"{label}: {predictions.shape[0]} predictions for {expected.shape[0]} pairs")
        worst = float(np.max(np.abs(predictions - expected)))
        if not worst <= tolerance:
            fail(f"{label} vs {reference}: max |difference| {worst:.3g} > {tolerance}")
        print(f"ok {label} vs {reference}: {len(expected)} pairs, max |difference| {worst:.3g}")


def run_graph_def(graph_bytes, users, products):
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph_bytes)
    ops = sorted({node.op for node in graph_def.node})
    forbidden = {op for op in ops if "Variable" in op or op.startswith(("Random", "Assign"))}
    if forbidden:
        fail(f"graph has training-time ops {sorted(forbidden)}")
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return session.run(
            f"{OUTPUT}:0", feed_dict={"user:0": users, "product:0": products}
        )


def run_saved_model_v2(path, users, products):
    loaded = tf.saved_model.load(path)
    signature = loaded.signatures["serving_default"]
    outputs = signature(user=tf.constant(users), product=tf.constant(products))
    if len(outputs) != 1:
        fail(f"serving_default has {len(outputs)} outputs, expected 1")
    return next(iter(outputs.values())).numpy()


def run_saved_model_v1(path, users, products):
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        signature = meta_graph.signature_def["serving_default"]
        if sorted(signature.inputs) != sorted(INPUTS):
            fail(f"serving_default inputs are {sorted(signature.inputs)}")
        if signature.method_name != "tensorflow/serving/predict":
            fail(f"serving_default method is {signature.method_name!r}")
        (output,) = signature.outputs.values()
        feed = {signature.inputs[name].name: value for name, value in zip(INPUTS, (users, products))}
        return session.run(output.name, feed_dict=feed)


class TFOutput(ctypes.Structure):
    _fields_ = [("oper", ctypes.c_void_p), ("index", ctypes.c_int)]


class TFBuffer(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("length", ctypes.c_size_t), ("deallocator", ctypes.c_void_p)]


def run_with_c_api(path, users, products):
    """Loads the SavedModel with TF_LoadSessionFromSavedModel (TensorFlow's C++ LoadSavedModel,
    the loader TensorFlow Serving uses) and runs its serving_default signature as TensorFlow
    Serving would: tensor names from the loaded MetaGraphDef's signature."""
    library = ctypes.CDLL(os.path.join(os.path.dirname(tf.__file__), "libtensorflow_cc.so.2"))
    c_void_p, c_int, c_int64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64
    signatures = {
        "TF_NewStatus": (c_void_p, []),
        "TF_NewGraph": (c_void_p, []),
        "TF_NewSessionOptions": (c_void_p, []),
        "TF_NewBuffer": (ctypes.POINTER(TFBuffer), []),
        "TF_LoadSessionFromSavedModel": (c_void_p, [c_void_p, c_void_p, ctypes.c_char_p,
                                                    ctypes.POINTER(ctypes.c_char_p), c_int,
                                                    c_void_p, ctypes.POINTER(TFBuffer), c_void_p]),
        "TF_GetCode": (c_int, [c_void_p]),
        "TF_Message": (ctypes.c_char_p, [c_void_p]),
        "TF_GraphOperationByName": (c_void_p, [c_void_p, ctypes.c_char_p]),
        "TF_AllocateTensor": (c_void_p, [c_int, ctypes.POINTER(c_int64), c_int, ctypes.c_size_t]),
        "TF_TensorData": (c_void_p, [c_void_p]),
        "TF_TensorByteSize": (ctypes.c_size_t, [c_void_p]),
        "TF_SessionRun": (None, [c_void_p, c_void_p, ctypes.POINTER(TFOutput), ctypes.POINTER(c_void_p), c_int,
                                 ctypes.POINTER(TFOutput), ctypes.POINTER(c_void_p), c_int,
                                 c_void_p, c_int, c_void_p, c_void_p]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(library, name)
        function.restype, function.argtypes = restype, argtypes

    def check(status, what):
        if library.TF_GetCode(status) != 0:
            fail(f"C API {what}: {library.TF_Message(status).decode()}")

    status = library.TF_NewStatus()
    graph = library.TF_NewGraph()
    meta_graph_buffer = library.TF_NewBuffer()
    tags = (ctypes.c_char_p * 1)(b"serve")
    session = library.TF_LoadSessionFromSavedModel(
        library.TF_NewSessionOptions(), None, path.encode(), tags, 1, graph, meta_graph_buffer, status
    )
    check(status, "LoadSavedModel")
    meta_graph = tf.compat.v1.MetaGraphDef()
    meta_graph.ParseFromString(ctypes.string_at(meta_graph_buffer.contents.data, meta_graph_buffer.contents.length))
    signature = meta_graph.signature_def["serving_default"]

    def outlet(tensor_name):
        operation, index = tensor_name.rsplit(":", 1)
        handle = library.TF_GraphOperationByName(graph, operation.encode())
        if not handle:
            fail(f"C API: no operation {operation!r} in the loaded graph")
        return TFOutput(handle, int(index))

    def tensor(values):
        values = np.ascontiguousarray(values, dtype=np.float32)
        dims = (c_int64 * values.ndim)(*values.shape)
        handle = library.TF_AllocateTensor(1, dims, values.ndim, values.nbytes)  # 1 = DT_FLOAT
        ctypes.memmove(library.TF_TensorData(handle), values.ctypes.data, values.nbytes)
        return handle

    inputs = (TFOutput * 2)(*(outlet(signature.inputs[name].name) for name in INPUTS))
    input_values = (c_void_p * 2)(tensor(users), tensor(products))
    (output_info,) = signature.outputs.values()
    outputs = (TFOutput * 1)(outlet(output_info.name))
    output_values = (c_void_p * 1)()
    library.TF_SessionRun(session, None, inputs, input_values, 2, outputs, output_values, 1, None, 0, None, status)
    check(status, "SessionRun")
    size = library.TF_TensorByteSize(output_values[0])
    return np.frombuffer(ctypes.string_at(library.TF_TensorData(output_values[0]), size), dtype=np.float32)


def check_empty_checkpoint(path):
    """variables/ holds a checkpoint TensorFlow opens, with no tensors in it."""
    reader = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
    tensors = reader.get_variable_to_shape_map()
    if tensors:
        fail(f"variables/ holds tensors {sorted(tensors)}; the graph has no variables")
    print("ok variables/ is a valid TensorFlow checkpoint with no tensors")


def main():
    with open(sys.argv[1]) as file:
        cases = json.load(file)
    pairs = np.asarray(cases["pairs"], dtype=np.float32)
    users, products = pairs[:, 0:1], pairs[:, 1:2]
    references = {
        label: np.asarray(values, dtype=np.float32) for label, values in cases["references"].items()
    }
    tolerance = cases["tolerance"]

    if cases.get("graph"):
        with open(cases["graph"], "rb") as file:
            compare("GraphDef file", run_graph_def(file.read(), users, products), references, tolerance)
    if cases.get("avro"):
        import fastavro

        with open(cases["avro"], "rb") as file:
            (record,) = list(fastavro.reader(file))
        compare("GraphDef from the Avro record", run_graph_def(record["tensorFlowModel"], users, products), references, tolerance)
    if cases.get("saved_model"):
        path = cases["saved_model"]
        check_empty_checkpoint(path)
        compare("tf.saved_model.load", run_saved_model_v2(path, users, products), references, tolerance)
        compare("tf.compat.v1.saved_model.loader.load", run_saved_model_v1(path, users, products), references, tolerance)
        compare("C API LoadSavedModel (TensorFlow Serving's loader)", run_with_c_api(path, users, products), references, tolerance)


if __name__ == "__main__":
    main()
