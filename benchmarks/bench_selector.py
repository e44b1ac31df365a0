"""Selector throughput: the same (image, question) pairs scored one crop at a time vs batched.

one at a time: for every crop, one text and one image forward (what a naive loop does);
batched:       ``Selector.select``: every crop of the batch in batched image passes, each text once.

    python benchmarks/bench_selector.py                 # the demo's tiny CLIP on CPU
    python benchmarks/bench_selector.py --model-size small   # a CLIP with 4x the compute
    python benchmarks/bench_selector.py --real-shape    # random CLIP ViT-L/14 on a GPU, bf16

Prints pairs/s for each way, the ratio and the latency per pair.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from semclip.data.grid import crop_grid
from semclip.data.images import load_image
from semclip.data.synthetic import SyntheticConfig, build_synthetic
from semclip.models.selector import Selector


def main(argv: list[str] | None = None) -> int:
    import importlib.util
    from pathlib import Path

    parser = argparse.ArgumentParser(
        description=__doc__.replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--real-shape", action="store_true", help="random CLIP ViT-L/14 (GPU)")
    parser.add_argument("--pairs", type=int, default=32, help="(image, question) pairs = batch")
    parser.add_argument("--grid", type=int, default=3, help="grid n")
    parser.add_argument(
        "--model-size",
        choices=["tiny", "small"],
        default="tiny",
        help="CPU model: the demo's tiny CLIP, or a small CLIP with 4x its compute per crop",
    )
    parser.add_argument("--image-batch-size", type=int, default=None, help="crops per forward")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the median counts")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    # the scorer builders of the training benchmark: same small CLIP, same real shape
    spec = importlib.util.spec_from_file_location(
        "bench_training", Path(__file__).with_name("bench_training.py")
    )
    bench_training = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_training)
    cuda = args.device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    scorer = bench_training.make_scorer(args.real_shape, args.device, dtype, args.model_size).eval()
    # CPU allocators page-fault on very large activations: moderate batches are fastest there
    batch = args.image_batch_size or (256 if cuda else 64)
    selector = Selector(scorer, image_batch_size=batch)
    ds = build_synthetic(SyntheticConfig(num_questions=args.pairs, grid=args.grid, image_size=288))
    images = [load_image(r["image"]) for r in ds]
    questions = list(ds["question"])

    @torch.no_grad()
    def one_at_a_time() -> None:
        for image, question in zip(images, questions):
            for cell in crop_grid(image, args.grid):
                scorer.score([question], [cell.image])

    def batched() -> None:
        selector._text_cache.clear()  # no help from a warm cache: texts are encoded too
        selector.select(images, questions, k=1, grid=args.grid)

    def timed(fn) -> float:
        fn()  # warm-up
        runs = []
        for _ in range(args.repeats):
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if cuda:
                torch.cuda.synchronize()
            runs.append(time.perf_counter() - start)
        return statistics.median(runs)

    shape = "CLIP ViT-L/14 shape" if args.real_shape else f"{args.model_size} random CLIP"
    print(
        f"{shape} on {args.device} ({dtype}); {args.pairs} pairs, grid {args.grid}x{args.grid}, "
        f"{batch} crops a forward; median of {args.repeats} runs"
    )
    rates = {}
    for name, fn in (("one crop at a time", one_at_a_time), ("batched", batched)):
        seconds = timed(fn)
        rates[name] = args.pairs / seconds
        print(f"{name:19s} {rates[name]:9.1f} pairs/s   {1000 * seconds / args.pairs:8.2f} ms/pair")
    print(f"ratio batched/one-at-a-time = {rates['batched'] / rates['one crop at a time']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
