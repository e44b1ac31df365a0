"""OpenMP waiting on a busy CPU: the demo's tiny VLM training, alone and beside a PyTorch neighbour.

    python benchmarks/bench_threads.py [--steps 40]

Each setting runs in a fresh interpreter (OpenMP reads its environment when torch loads): libgomp's
default (spin 300,000 rounds before sleeping), ``GOMP_SPINCOUNT=1000`` (what the command lines set,
``semclip.cli.threads``) and ``OMP_WAIT_POLICY=PASSIVE``; alone, then beside a second process that
runs small parallel matrix products on 2 threads with the same setting (a test suite, another
demo). Prints seconds per setting and the ratios to the default.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

TRAIN = """
import sys, tempfile, time, torch
torch.set_num_threads(2)
from semclip.demo_vlm import AnsweringConfig, train_answering_llava
config = AnsweringConfig(steps=int(sys.argv[1]), train_questions=200, test_questions=20)
start = time.perf_counter()
train_answering_llava(tempfile.mkdtemp(), config=config)
print(time.perf_counter() - start)
"""

NEIGHBOUR = """
import torch
torch.set_num_threads(2)
a = torch.randn(64, 64)
while True:  # many small parallel regions, as a tiny model's training has
    a = torch.tanh(a @ a.T / 64)
"""

SETTINGS = {
    "default (spin 300k)": {},
    "GOMP_SPINCOUNT=1000": {"GOMP_SPINCOUNT": "1000"},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
}


def environment(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    return {**env, **extra}


def seconds(steps: int, extra: dict[str, str], busy: bool) -> float:
    env = environment(extra)
    neighbour = subprocess.Popen([sys.executable, "-c", NEIGHBOUR], env=env) if busy else None
    try:
        if neighbour is not None:
            time.sleep(2)  # let it start
        done = subprocess.run(
            [sys.executable, "-c", TRAIN, str(steps)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return float(done.stdout.strip().splitlines()[-1])
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps per run (40)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting; the median")
    args = parser.parse_args(argv)
    print(
        f"{os.cpu_count()} CPUs; {args.steps} steps of the demo's tiny VLM, 2 torch threads; "
        f"median of {args.repeats} runs, the settings taking turns"
    )
    results: dict[tuple[str, bool], float] = {}
    for busy in (False, True):
        runs: dict[str, list[float]] = {name: [] for name in SETTINGS}
        for _ in range(args.repeats):  # interleaved: drift on the machine hits every setting
            for name, extra in SETTINGS.items():
                runs[name].append(seconds(args.steps, extra, busy))
        for name in SETTINGS:
            results[name, busy] = statistics.median(runs[name])
            where = "beside a torch neighbour" if busy else "alone"
            print(f"{name:26s} {where:25s} {results[name, busy]:7.1f} s", flush=True)
    base = "default (spin 300k)"
    for name in list(SETTINGS)[1:]:
        print(
            f"ratio default / {name}: alone {results[base, False] / results[name, False]:.2f}x, "
            f"beside a neighbour {results[base, True] / results[name, True]:.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
