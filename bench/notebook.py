"""The seed notebook's job as one plain Python script: the peer warez-pipe's whole small
pipeline is measured against (bench/run). Reads the ratings CSV, maps the UUIDs (pandas.unique
order), trains the Keras DeepCollaborativeFiltering model for one epoch, freezes it to a GraphDef,
exports a SavedModel and writes both Avro files.

usage: python bench/notebook.py RATINGS_CSV SCHEMA_AVSC OUT_DIR
"""

import io
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import avro.io  # noqa: E402
import avro.datafile  # noqa: E402
import avro.schema  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.framework.convert_to_constants import (  # noqa: E402
    convert_variables_to_constants_v2,
)


def build_model(n_customers, n_products, n_factors=50, p_dropout=0.2):
    user = tf.keras.Input(shape=(1,), name="user")
    product = tf.keras.Input(shape=(1,), name="product")
    p = tf.keras.layers.Reshape((n_factors,))(tf.keras.layers.Embedding(n_customers, n_factors)(user))
    q = tf.keras.layers.Reshape((n_factors,))(tf.keras.layers.Embedding(n_products, n_factors)(product))
    x = tf.keras.layers.Concatenate(axis=1)([p, q])
    x = tf.keras.layers.Dropout(p_dropout)(x)
    x = tf.keras.layers.Dense(n_factors, activation="relu")(x)
    x = tf.keras.layers.Dropout(p_dropout)(x)
    out = tf.keras.layers.Dense(1, name="dense_2")(x)
    model = tf.keras.Model(inputs=[user, product], outputs=out)
    model.compile(optimizer=tf.keras.optimizers.Adam(), loss="mean_squared_logarithmic_error")
    return model


def load_ratings(csv_path):
    """The notebook's data preparation: ids mapped in first-seen (pandas.unique) order."""
    ratings = pd.read_csv(csv_path)
    customers = {c: i for i, c in enumerate(pd.unique(ratings["customerId"]))}
    products = {p: i for i, p in enumerate(pd.unique(ratings["productId"]))}
    user = ratings["customerId"].map(customers).astype("float32").to_numpy().reshape(-1, 1)
    product = ratings["productId"].map(products).astype("float32").to_numpy().reshape(-1, 1)
    target = ratings["scaled_purchase_freq"].astype("float32").to_numpy()
    return customers, products, user, product, target


def main():
    csv_path, schema_path, out_dir = sys.argv[1:4]
    os.makedirs(out_dir, exist_ok=True)
    start = time.perf_counter()
    customers, products, user, product, target = load_ratings(csv_path)

    model = build_model(len(customers), len(products))
    history = model.fit([user, product], target, batch_size=64, epochs=1, validation_split=0.25, verbose=0)

    func = tf.function(lambda u, p: model([u, p], training=False))
    concrete = func.get_concrete_function(
        tf.TensorSpec([None, 1], tf.float32, name="user"), tf.TensorSpec([None, 1], tf.float32, name="product")
    )
    frozen = convert_variables_to_constants_v2(concrete)
    graph_bytes = frozen.graph.as_graph_def().SerializeToString()
    with open(os.path.join(out_dir, "optimized_ProductRecommender.pb"), "wb") as f:
        f.write(graph_bytes)
    tf.saved_model.save(model, os.path.join(out_dir, "saved_model"))

    schema = avro.schema.parse(open(schema_path).read())
    record = {
        "modelId": "recommender-model-" + time.strftime("%Y-%m-%d-%H:%M:%S"),
        "tensorFlowModel": graph_bytes,
        "productMap": products,
        "customerMap": customers,
    }
    with open(os.path.join(out_dir, "recommender.avro"), "wb") as f:
        writer = avro.datafile.DataFileWriter(f, avro.io.DatumWriter(), schema)
        writer.append(record)
        writer.close()
    buffer = io.BytesIO()
    avro.io.DatumWriter(schema).write(record, avro.io.BinaryEncoder(buffer))
    with open(os.path.join(out_dir, "recommender-no-schema.avro"), "wb") as f:
        f.write(buffer.getvalue())
    elapsed = time.perf_counter() - start
    print(json.dumps({"seconds": elapsed, "val_loss": float(history.history["val_loss"][-1])}))


if __name__ == "__main__":
    main()
