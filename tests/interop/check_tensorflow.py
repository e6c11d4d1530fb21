"""Loads warez-pipe's TensorFlow artifacts with the real TensorFlow and compares predictions.

Usage: check_tensorflow.py CASES.json

CASES.json: {"graph": path of a binary GraphDef, or null,
             "avro": path of a RecommenderModel container file (its tensorFlowModel is imported), or null,
             "saved_model": path of a SavedModel folder, or null,
             "pairs": [[customer, product], ...], "expected": [prediction, ...], "tolerance": 1e-5}

Every given artifact is loaded in every way the serving side may load it; each one's predictions
for `pairs` must match `expected`. Prints one line per check; exits 1 on the first mismatch.
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


def compare(label, predictions, expected, tolerance):
    predictions = np.asarray(predictions, dtype=np.float32).reshape(-1)
    if predictions.shape != expected.shape:
        fail(f"{label}: {predictions.shape[0]} predictions for {expected.shape[0]} pairs")
    worst = float(np.max(np.abs(predictions - expected)))
    if not worst <= tolerance:
        fail(f"{label}: max |difference| {worst:.3g} > {tolerance}")
    print(f"ok {label}: {len(expected)} pairs, max |difference| {worst:.3g}")


def run_graph_def(graph_bytes, users, products):
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph_bytes)
    ops = sorted({node.op for node in graph_def.node})
    forbidden = {"VariableV2", "VarHandleOp", "ReadVariableOp", "RandomUniform", "Dropout"} & set(ops)
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


def load_with_c_api(path):
    """Loads the SavedModel with TF_LoadSessionFromSavedModel: TensorFlow's C++ LoadSavedModel,
    the loader TensorFlow Serving uses."""
    library = ctypes.CDLL(os.path.join(os.path.dirname(tf.__file__), "libtensorflow_cc.so.2"))
    for name, restype in [
        ("TF_NewStatus", ctypes.c_void_p),
        ("TF_NewGraph", ctypes.c_void_p),
        ("TF_NewSessionOptions", ctypes.c_void_p),
        ("TF_LoadSessionFromSavedModel", ctypes.c_void_p),
        ("TF_GetCode", ctypes.c_int),
        ("TF_Message", ctypes.c_char_p),
        ("TF_GraphOperationByName", ctypes.c_void_p),
    ]:
        getattr(library, name).restype = restype
    library.TF_GetCode.argtypes = [ctypes.c_void_p]
    library.TF_Message.argtypes = [ctypes.c_void_p]
    library.TF_GraphOperationByName.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    library.TF_LoadSessionFromSavedModel.argtypes = [ctypes.c_void_p] * 3 + [
        ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p
    ]
    status = library.TF_NewStatus()
    graph = library.TF_NewGraph()
    tags = (ctypes.c_char_p * 1)(b"serve")
    session = library.TF_LoadSessionFromSavedModel(
        library.TF_NewSessionOptions(), None, path.encode(), tags, 1, graph, None, status
    )
    if library.TF_GetCode(status) != 0 or not session:
        fail(f"C API LoadSavedModel: {library.TF_Message(status).decode()}")
    for name in (*INPUTS, OUTPUT):
        if not library.TF_GraphOperationByName(graph, name.encode()):
            fail(f"C API LoadSavedModel: no operation {name!r} in the loaded graph")
    print("ok C API LoadSavedModel (TensorFlow Serving's loader): tag serve, graph has user, product, dense_2/BiasAdd")


def main():
    with open(sys.argv[1]) as file:
        cases = json.load(file)
    pairs = np.asarray(cases["pairs"], dtype=np.float32)
    users, products = pairs[:, 0:1], pairs[:, 1:2]
    expected = np.asarray(cases["expected"], dtype=np.float32)
    tolerance = cases["tolerance"]

    if cases.get("graph"):
        with open(cases["graph"], "rb") as file:
            compare("GraphDef file", run_graph_def(file.read(), users, products), expected, tolerance)
    if cases.get("avro"):
        import fastavro

        with open(cases["avro"], "rb") as file:
            (record,) = list(fastavro.reader(file))
        compare("GraphDef from the Avro record", run_graph_def(record["tensorFlowModel"], users, products), expected, tolerance)
    if cases.get("saved_model"):
        path = cases["saved_model"]
        compare("tf.saved_model.load", run_saved_model_v2(path, users, products), expected, tolerance)
        compare("tf.compat.v1.saved_model.loader.load", run_saved_model_v1(path, users, products), expected, tolerance)
        load_with_c_api(path)


if __name__ == "__main__":
    main()
