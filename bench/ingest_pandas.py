"""The notebook's ingest, timed: pandas read_csv + unique + map on one ratings CSV.

usage: python bench/ingest_pandas.py RATINGS_CSV
Prints one JSON line like examples/ingest_bench.rs: rows, customers, products, file size,
wall and CPU (user + system) seconds of read + unique + map (after the imports), and the process's peak resident memory.
"""

import json
import os
import resource
import sys
import time

import pandas as pd


def main():
    csv_path = sys.argv[1]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    cpu_start = time.process_time()
    start = time.perf_counter()
    ratings = pd.read_csv(csv_path)
    customers = {c: i for i, c in enumerate(pd.unique(ratings["customerId"]))}
    products = {p: i for i, p in enumerate(pd.unique(ratings["productId"]))}
    user = ratings["customerId"].map(customers).astype("float32").to_numpy()
    product = ratings["productId"].map(products).astype("float32").to_numpy()
    target = ratings["scaled_purchase_freq"].astype("float32").to_numpy()
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    assert len(user) == len(product) == len(target)
    print(
        json.dumps(
            {
                "rows": len(ratings),
                "customers": len(customers),
                "products": len(products),
                "file_bytes": os.path.getsize(csv_path),
                "seconds": round(seconds, 4),
                "cpu_seconds": round(cpu_seconds, 4),
                "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "rss_after_imports_bytes": rss_before,
            }
        )
    )


if __name__ == "__main__":
    main()
