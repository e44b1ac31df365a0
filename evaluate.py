"""semclip-evaluate: the paper's Table 2 from a labelled split, with no VLM re-run.

    python evaluate.py --labels-dir labels/llava15-7b-sqa-n2 --split test \
        --scorer zero-shot=openai/clip-vit-large-patch14 --scorer trained=runs/x/export
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

from semclip.data.hub import looks_local

PROG = "semclip-evaluate"

EXAMPLES = """\
rows of the table (accuracy over the labelled questions, in %):
  overview only   the VLM on the overview alone
  random crop     expected accuracy of a uniformly random cell
  majority vote   the most common answer over the cells, right or wrong
  oracle          some cell is right (upper bound of any selector)
  NAME            the cell that scorer NAME ranks first (one row per --scorer)

examples:
  # the demo's label set, scorer-free rows only (no model is loaded)
  semclip-evaluate --labels-dir demo_out/labels

  # a stock CLIP (zero-shot) against a trained scorer, top-1 and top-2 crops
  semclip-evaluate --labels-dir labels/llava15-7b-sqa-n2 --split test \\
      --scorer zero-shot=openai/clip-vit-large-patch14 \\
      --scorer trained=runs/x/export --k 1 2 --out-dir eval/sqa

writes OUT_DIR/results.json, OUT_DIR/table.md and OUT_DIR/accuracy.png, and prints the table.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not the usage block
        self.exit(2, f"{PROG}: error: {message} (see {PROG} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="The paper's Table 2 from a labelled split, with no VLM re-run.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--labels-dir",
        required=True,
        metavar="DIR",
        help="folder of the label set, as written by semclip-label --output-dir (required)",
    )
    parser.add_argument(
        "--split", default="test", help="labelled split to evaluate (default: %(default)s)"
    )
    parser.add_argument(
        "--scorer",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a scorer to compare: NAME is its row in the table, PATH an exported scorer folder "
        "or a hub id (a stock CLIP/SigLIP gives the zero-shot row); repeat for several "
        "(default: none, only the scorer-free rows)",
    )
    parser.add_argument(
        "--k",
        type=int,
        nargs="+",
        default=[1],
        help="crops per question; k > 1 adds a 'NAME top-k any' row (default: 1)",
    )
    parser.add_argument(
        "--dataset",
        help="source dataset, folder or hub id (default: the one recorded in the label set)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="questions per batch (default: %(default)s)"
    )
    parser.add_argument(
        "--device", help="device for the scorers, e.g. cpu or cuda:0 (default: cuda if present)"
    )
    parser.add_argument(
        "--out-dir",
        default="eval",
        metavar="DIR",
        help="where results.json, table.md and accuracy.png go (default: %(default)s)",
    )
    return parser


def check_args(args: argparse.Namespace) -> dict[str, str]:
    """The scorers by name; ValueError, naming the flag, for what a user can get wrong."""
    labels = Path(args.labels_dir).expanduser()
    if not labels.is_dir():
        raise ValueError(
            f"--labels-dir {args.labels_dir}: no such folder (give the --output-dir of a "
            "semclip-label run, e.g. demo_out/labels)"
        )
    scorers = {}
    for item in args.scorer:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--scorer wants NAME=PATH (e.g. trained=runs/x/export), got {item!r}")
        if name in scorers:
            raise ValueError(f"--scorer {name} given twice: give each scorer its own NAME")
        if looks_local(path) and not Path(path).expanduser().is_dir():
            raise ValueError(
                f"--scorer {item}: no such folder (give an exported scorer folder, e.g. "
                "runs/x/export, or a hub id such as openai/clip-vit-large-patch14)"
            )
        scorers[name] = path
    if args.dataset and looks_local(args.dataset) and not Path(args.dataset).expanduser().exists():
        raise ValueError(
            f"--dataset {args.dataset}: no such folder (leave it out to use the label set's)"
        )
    if any(k < 1 for k in args.k):
        raise ValueError(f"--k wants crops per question >= 1, got {args.k}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    from semclip.data.labels import read_info, read_labels  # pyarrow only: still well under 5 s

    info = read_info(labels)
    key = info.provenance.resume_key if info else None
    table = read_labels(labels, args.split, key, columns=["status", "grid_n"]).to_pylist()
    grids = {r["grid_n"] for r in table if r["status"] == "labelled"}
    if not grids:
        found = ", ".join(sorted(info.splits)) if info else "none (no labelset.json there)"
        raise ValueError(
            f"--split {args.split}: no labelled questions in {args.labels_dir} (splits there: "
            f"{found}); pick one with --split, or label it first with semclip-label"
        )
    cells = max(grids) ** 2
    if too_big := [k for k in args.k if k > cells]:
        raise ValueError(f"--k {too_big[0]}: a {max(grids)}x{max(grids)} grid has 1..{cells} cells")
    return scorers


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # before the heavy imports: --help stays fast
    try:
        scorers = check_args(args)
    except ValueError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for name in ("httpx", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    from semclip.training.evaluate import EvalConfig, evaluate

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
    try:
        results = evaluate(config)
    except ValueError as err:  # no labelled rows, k too large, data changed since labelling
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a scorer or dataset that cannot be found or fetched (offline?)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(
            f"{PROG}: error: {first} (check the --scorer / --dataset name; offline, "
            "it must already be in the Hugging Face cache)",
            file=sys.stderr,
        )
        return 2
    print(Path(args.out_dir, "table.md").read_text(encoding="utf-8"))
    print(json.dumps(results["accuracy"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
