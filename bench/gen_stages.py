#!/usr/bin/env python3
"""Write a warez-pipe pipeline of N trivial `cmd` stages, for the engine scale bench and tests.

    bench/gen_stages.py chain N DIR    # s0 reads data/src.txt, stage i reads stage i-1's output
    bench/gen_stages.py fan N DIR      # src reads data/src.txt; N middle stages read src's output;
                                       # sink reads them all

Writes DIR/pipeline.yaml and DIR/data/src.txt; every output is a few bytes under DIR/out/.
"""
import os
import sys


def chain(n):
    yield "  s0:\n    cmd: cat data/src.txt > out/0.txt\n    deps: [data/src.txt]\n    outs: [out/0.txt]\n"
    for i in range(1, n):
        yield (f"  s{i}:\n    cmd: echo {i} > out/{i}.txt\n"
               f"    deps: [out/{i - 1}.txt]\n    outs: [out/{i}.txt]\n")


def fan(n):
    yield "  src:\n    cmd: cat data/src.txt > out/src.txt\n    deps: [data/src.txt]\n    outs: [out/src.txt]\n"
    for i in range(n):
        yield (f"  m{i}:\n    cmd: echo {i} > out/m/{i}.txt\n"
               f"    deps: [out/src.txt]\n    outs: [out/m/{i}.txt]\n")
    deps = "\n".join(f"      - out/m/{i}.txt" for i in range(n))
    yield f"  sink:\n    cmd: ls out/m | wc -l > out/sink.txt\n    deps:\n{deps}\n    outs: [out/sink.txt]\n"


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("chain", "fan"):
        sys.exit(__doc__)
    shape, n, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.makedirs(os.path.join(folder, "data"), exist_ok=True)
    os.makedirs(os.path.join(folder, "out", "m"), exist_ok=True)
    with open(os.path.join(folder, "data", "src.txt"), "w") as f:
        f.write("source 1\n")
    with open(os.path.join(folder, "pipeline.yaml"), "w") as f:
        f.write(f"name: {shape}{n}\nstages:\n")
        f.writelines(chain(n) if shape == "chain" else fan(n))


if __name__ == "__main__":
    main()
