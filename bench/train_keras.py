"""The recommender network trained the seed notebook's way in Keras 3 on TensorFlow: the peer
warez-pipe's train stage is measured against (training samples per second, validation MSLE).

The model is bench/notebook.py's `build_model` (Embedding(n_customers, 50) and
Embedding(n_products, 50) on inputs `user`/`product` [N, 1], reshaped, concatenated, Dropout 0.2,
Dense 50 ReLU, Dropout 0.2, Dense 1; Adam with Keras' defaults; MSLE loss), trained like the
train stage's defaults: batch 64, 1 epoch, validation_split 0.25 (the last quarter of the rows).
Ids are mapped in pandas.unique order (first seen), as in the notebook and warez-pipe's ingest.

Training throughput counts only the training loop (from the first training batch until
validation starts), so CSV parsing, model building and the validation pass are excluded; the
first step's graph tracing is included in `samples_per_second` and excluded in
`steady_samples_per_second`.

usage: python bench/train_keras.py RATINGS_CSV OUT_JSON [SEED]
"""

import json
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from notebook import build_model, load_ratings  # noqa: E402  (bench/notebook.py, beside this file)

BATCH_SIZE = 64
EPOCHS = 1
VALIDATION_SPLIT = 0.25


class TrainingClock(keras.callbacks.Callback):
    """Times the training loop: first batch start, second batch start, validation start."""

    def __init__(self) -> None:
        super().__init__()
        self.batch_starts: list[float] = []
        self.validation_start: float | None = None

    def on_train_batch_begin(self, batch, logs=None):
        if len(self.batch_starts) < 2:
            self.batch_starts.append(time.perf_counter())

    def on_test_begin(self, logs=None):
        if self.validation_start is None:
            self.validation_start = time.perf_counter()


def main() -> None:
    csv_path, out_path = sys.argv[1], sys.argv[2]
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 42
    keras.utils.set_random_seed(seed)

    customers, products, user, product, target = load_ratings(csv_path)

    rows = len(target)
    # Keras' split (train_validation_split): the first floor(rows * (1 - split)) rows train.
    train_rows = math.floor(rows * (1.0 - VALIDATION_SPLIT))
    validation_rows = rows - train_rows

    model = build_model(len(customers), len(products))
    clock = TrainingClock()
    history = model.fit(
        [user, product],
        target,
        batch_size=BATCH_SIZE,
        epochs=EPOCHS,
        validation_split=VALIDATION_SPLIT,
        shuffle=True,
        verbose=0,
        callbacks=[clock],
    )

    train_seconds = clock.validation_start - clock.batch_starts[0]
    steady_seconds = clock.validation_start - clock.batch_starts[1]
    result = {
        "framework": f"keras {keras.__version__} / tensorflow {tf.__version__} (CPU)",
        "ratings": os.path.basename(csv_path),
        "rows": rows,
        "train_rows": train_rows,
        "validation_rows": validation_rows,
        "n_customers": len(customers),
        "n_products": len(products),
        "batch_size": BATCH_SIZE,
        "epochs": EPOCHS,
        "seed": seed,
        "cpu_threads": os.cpu_count(),
        "train_seconds": round(train_seconds, 3),
        "samples_per_second": round(train_rows / train_seconds),
        "steady_samples_per_second": round((train_rows - BATCH_SIZE) / steady_seconds),
        "train_msle": float(history.history["loss"][-1]),
        "val_msle": float(history.history["val_loss"][-1]),
    }
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as file:
        json.dump(result, file, indent=2)
        file.write("\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
