"""semclip-evaluate: the paper's Table 2 from a labelled split, with no VLM re-run.

    python evaluate.py --labels-dir labels/llava15-7b-sqa-n2 --split test \
        --scorer zero-shot=openai/clip-vit-large-patch14 --scorer trained=runs/x/export
"""

from __future__ import annotations

import argparse
import json
import logging
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="semclip-evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--labels-dir", required=True, help="folder of the label set")
    parser.add_argument("--split", default="test", help="labelled split to evaluate")
    parser.add_argument(
        "--scorer",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a scorer to compare (hub id or folder); repeat for several",
    )
    parser.add_argument("--k", type=int, nargs="+", default=[1], help="crops per question")
    parser.add_argument("--dataset", help="source dataset (default: the label set's)")
    parser.add_argument("--batch-size", type=int, default=32, help="questions per batch")
    parser.add_argument("--device", help="device for the scorers (default: cuda if present)")
    parser.add_argument("--out-dir", default="eval", help="results.json, table.md, accuracy.png")
    return parser


def main(argv: list[str] | None = None) -> int:
    from semclip.training.evaluate import EvalConfig, evaluate

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    scorers = {}
    for item in args.scorer:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            print(
                f"semclip-evaluate: error: --scorer wants NAME=PATH, got {item!r}", file=sys.stderr
            )
            return 2
        scorers[name] = path
    config = EvalConfig(
        labels_dir=args.labels_dir,
        split=args.split,
        scorers=scorers,
        ks=args.k,
        dataset=args.dataset,
        batch_size=args.batch_size,
        device=args.device,
        out_dir=args.out_dir,
    )
    results = evaluate(config)
    print(open(f"{args.out_dir}/table.md", encoding="utf-8").read())
    print(json.dumps(results["accuracy"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
