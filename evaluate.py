"""semclip-evaluate: the paper's Table 2, from a labelled split (no VLM re-run) or with the VLM in
the loop (``--vlm``: the VLM answers from the overview plus each scorer's top-k crops).

    python evaluate.py --labels-dir labels/llava15-7b-sqa-n2 --split test \
        --scorer zero-shot=openai/clip-vit-large-patch14 --scorer trained=runs/x/export
    python evaluate.py --vlm llava-hf/llava-1.5-7b-hf --dataset derek-thomas/ScienceQA \
        --split test --scorer trained=runs/x/export --k 1 2
"""

from __future__ import annotations

import argparse
import json
import logging
import warnings
from pathlib import Path

from semclip.cli.errors import OneLineParser, check_device, take_debug_flag, user_error
from semclip.cli.threads import calm_openmp
from semclip.cli.vlm_flags import VLM_OPTIONS, add_vlm_flags, check_vlm_flags, vlm_options
from semclip.data.hub import looks_local
from semclip.evaluation.tables import check_scorer_names

PROG = "semclip-evaluate"

EXAMPLES = """\
rows of the table from a label set (accuracy over the labelled questions, in %):
  overview only   the VLM on the overview alone
  random crop     expected accuracy of a uniformly random cell
  majority vote   the most common answer over the cells, right or wrong
  oracle          some cell is right (upper bound of any selector)
  NAME            the cell that scorer NAME ranks first (one row per --scorer)

with --vlm MODEL the VLM is run: plain VLM (k=0), random (k=1: exact mean over the cells;
k>=2: mean of --random-draws seeded draws), majority vote and oracle (k=1), and NAME (k=K): the
VLM shown the overview plus the K crops scorer NAME ranks highest. A scorer can also be vlm-psi
(the VLM's own similarity) or random[:SEED].

examples:
  # the demo's label set, scorer-free rows only (no model is loaded)
  semclip-evaluate --labels-dir demo_out/labels

  # a stock CLIP (zero-shot) against a trained scorer, top-1 and top-2 crops
  semclip-evaluate --labels-dir labels/llava15-7b-sqa-n2 --split test \\
      --scorer zero-shot=openai/clip-vit-large-patch14 \\
      --scorer trained=runs/x/export --k 1 2 --out-dir eval/sqa

  # LLaVA-1.5-7B in the loop on ScienceQA's test split, a trained scorer at k = 1 and 2
  semclip-evaluate --vlm llava-hf/llava-1.5-7b-hf --dataset derek-thomas/ScienceQA \\
      --split test --scorer trained=runs/x/export --scorer psi=vlm-psi --k 1 2

writes OUT_DIR/results.json, OUT_DIR/table.md and OUT_DIR/accuracy.png, and prints the table.
A mistake is one line; --debug (or SEMCLIP_DEBUG=1) shows its traceback.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description="The paper's Table 2: from a labelled split (--labels-dir, no model run), or "
        "with the VLM in the loop (--vlm MODEL: it answers from the overview plus each scorer's "
        "top-k crops).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--labels-dir",
        metavar="DIR",
        help="folder of the label set, as written by semclip-label --output-dir (required "
        "without --vlm; with --vlm it gives the dataset and grid)",
    )
    parser.add_argument(
        "--vlm",
        metavar="MODEL",
        help="run this VLM (hub id or folder) in the loop instead of reading stored labels",
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
        help="crops per question; from labels k > 1 adds a 'NAME top-k any' row (default: 1); "
        "with --vlm the VLM is shown k crops (default: 1 2)",
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
    vlm = parser.add_argument_group("with --vlm")
    vlm.add_argument(
        "--grid",
        type=int,
        help="grid n (default: the label set's, else the grid the scorers were trained on, else 2)",
    )
    vlm.add_argument(
        "--preset",
        help="column preset by hub id (e.g. lmms-lab/MMBench) for a local copy (default: the "
        "dataset's own preset, else the ScienceQA columns)",
    )
    vlm.add_argument(
        "--columns", help="column mapping over the preset: field=column pairs, e.g. question=Q"
    )
    vlm.add_argument("--limit", type=int, help="evaluate at most this many questions")
    vlm.add_argument(
        "--random-draws", type=int, default=4, help="draws per question for random k>=2 (4)"
    )
    vlm.add_argument("--seed", type=int, default=0, help="seed of the random draws (default: 0)")
    vlm.add_argument("--dtype", help="auto, bfloat16, float16 or float32 (default: auto)")
    vlm.add_argument("--mode", help="logprob or generate (default: the label set's, else logprob)")
    vlm.add_argument(
        "--max-pixels", type=int, help="largest image (width * height) (default: the label set's)"
    )
    add_vlm_flags(vlm)
    vlm.add_argument(
        "--force",
        action="store_true",
        help="run even where a flag contradicts the label set (--labels-dir) or a scorer's "
        "training grid; the table says which",
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
    if args.vlm is None and args.labels_dir is None:
        raise ValueError(
            "--labels-dir (stored labels) or --vlm MODEL (the VLM in the loop) is required"
        )
    if args.labels_dir is not None and not Path(args.labels_dir).expanduser().is_dir():
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
        check_scorer_names([name])
        if looks_local(path) and not Path(path).expanduser().is_dir():
            raise ValueError(
                f"--scorer {item}: no such folder (give an exported scorer folder, e.g. "
                "runs/x/export, or a hub id such as openai/clip-vit-large-patch14)"
            )
        if args.vlm is None and (path == "vlm-psi" or path.split(":")[0] == "random"):
            raise ValueError(f"--scorer {item} needs the VLM in the loop: add --vlm MODEL")
        scorers[name] = path
    if args.dataset and looks_local(args.dataset) and not Path(args.dataset).expanduser().exists():
        raise ValueError(
            f"--dataset {args.dataset}: no such folder (leave it out to use the label set's)"
        )
    if args.k is not None and any(k < 1 for k in args.k):
        raise ValueError(f"--k wants crops per question >= 1, got {args.k}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    check_vlm_flags(args)  # --mode foo is a mistake even where --vlm is not given
    if args.vlm is not None:
        return _check_vlm_args(args, scorers)
    from semclip.data.labels import read_info, read_labels  # pyarrow only: still well under 5 s

    args.k = args.k or [1]
    labels = Path(args.labels_dir).expanduser()
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


#: Flags that decide what the VLM is shown: with --labels-dir they default to the label set's,
#: and one that contradicts it is refused unless --force (then the table names it).
SEEN_FLAGS = ("mode", *VLM_OPTIONS)


def _same_model(given: str, recorded: str) -> bool:
    """Whether ``--vlm`` names the label set's evaluator (a folder by its resolved path)."""
    if looks_local(given) or looks_local(recorded):
        return Path(given).expanduser().resolve() == Path(recorded).expanduser().resolve()
    return given == recorded


def _inherit(args: argparse.Namespace, name: str, recorded, flag: str | None = None) -> None:
    """Fill ``args.name`` from the label set, or note a contradiction (``args.forced``)."""
    given = getattr(args, name, None)
    if recorded is None or given is None:
        setattr(args, name, recorded if given is None else given)
        return
    if given != recorded:
        flag = flag or "--" + name.replace("_", "-")
        args.forced.append(f"{flag} {given!r} (label set: {recorded!r})")


def _check_vlm_args(args: argparse.Namespace, scorers: dict[str, str]) -> dict[str, str]:
    """``--vlm`` runs: what the VLM is shown (from the label set when given: a flag that
    contradicts it needs --force), the dataset, the grid (the label set's, else the scorers'),
    k and the model."""
    args.forced = []
    if args.labels_dir is not None:
        from semclip.data.labels import read_info

        info = read_info(Path(args.labels_dir).expanduser())
        if info is None:
            raise ValueError(f"--labels-dir {args.labels_dir}: no labelset.json there")
        if not args.dataset and not args.preset and not args.columns:
            args.columns = info.columns  # the mapping the labels were made through
        if info.vlm is not None:  # show the VLM what labeling showed it
            from semclip.vlm.config import VLMConfig

            recorded = VLMConfig.from_dict(info.vlm)
            if args.prompt_format == "auto":  # the model's own format: what the label set holds
                args.prompt_format = None
            same = _same_model(args.vlm, recorded.model)
            if not same:  # another VLM: its own revision, prompt format and system line
                args.forced.append(f"--vlm {args.vlm} (label set: {recorded.model})")
            for name in SEEN_FLAGS if same else ("mode", "image_backend", "alpha"):
                _inherit(args, name, getattr(recorded, name))
            args.template = recorded.template
        _inherit(args, "max_pixels", info.max_pixels)
        args.dataset = args.dataset or info.dataset
        _inherit(args, "grid", info.provenance.grid_n)
    trained = _scorer_grids(scorers)
    if args.grid is None and trained:
        args.grid = trained[0][1]
    args.grid = args.grid or 2
    args.forced += [
        f"--scorer {name}: trained on a {n}x{n} grid, evaluated on {args.grid}x{args.grid}"
        for name, n in trained
        if n != args.grid
    ]
    if args.forced and not args.force:
        raise ValueError(
            f"{args.forced[0]}: this contradicts what the labels or the scorer were made with, "
            "so the table would not measure them; drop the flag, or pass --force to run anyway "
            "(the table says so)"
        )
    if not args.dataset:
        raise ValueError("--vlm needs --dataset (a hub id, folder or parquet files)")
    check_vlm_flags(args)
    args.k = args.k or [1, 2]
    if too_big := [k for k in args.k if k > args.grid**2]:
        n = args.grid
        raise ValueError(f"--k {too_big[0]}: a {n}x{n} grid has 1..{n**2} cells")
    if args.random_draws < 1:
        raise ValueError(f"--random-draws must be >= 1, got {args.random_draws}")
    check_device(args.device)
    if looks_local(args.vlm) and not Path(args.vlm).expanduser().is_dir():
        raise ValueError(f"--vlm {args.vlm}: no such folder")
    if isinstance(args.columns, dict):  # recorded in the label set
        from semclip.data.presets import resolve_columns

        args.columns = resolve_columns(args.columns)
    elif args.preset or args.columns:
        from semclip.data.presets import parse_columns, resolve_columns

        columns = resolve_columns(args.preset, args.dataset)
        args.columns = parse_columns(args.columns, columns) if args.columns else columns
    return scorers


def _scorer_grids(scorers: dict[str, str]) -> list[tuple[str, int]]:
    """(name, grid) of each scorer folder whose export records its training grid."""
    from semclip.models.scorer_settings import saved_grid

    grids = [
        (name, saved_grid(path) if looks_local(path) else None) for name, path in scorers.items()
    ]
    return [(name, grid) for name, grid in grids if grid]


def main(argv: list[str] | None = None) -> int:
    calm_openmp()  # before torch is imported
    argv = take_debug_flag(argv)
    args = build_parser().parse_args(argv)  # before the heavy imports: --help stays fast
    try:
        scorers = check_args(args)
    except ValueError as err:
        return user_error(PROG, err)

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for name in ("httpx", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    from semclip.labeling.evaluator import ScoringError  # every question failed in the VLM

    try:
        results = _run_vlm(args, scorers) if args.vlm else _run_stored(args, scorers)
    except (ValueError, ImportError, OSError, ScoringError) as err:  # no rows, a name, a package
        return user_error(PROG, err)
    print(Path(args.out_dir, "table.md").read_text(encoding="utf-8"))
    print(json.dumps(results["accuracy"], indent=2))
    return 0


def _run_stored(args: argparse.Namespace, scorers: dict[str, str]) -> dict:
    from semclip.evaluation.stored import EvalConfig, evaluate

    config = EvalConfig(
        labels_dir=args.labels_dir,
        split=args.split,
        scorers=scorers,
        ks=args.k,
        dataset=args.dataset,
        batch_size=args.batch_size,
        device=args.device,
        out_dir=args.out_dir,
        force=args.force,
    )
    return evaluate(config)


def _run_vlm(args: argparse.Namespace, scorers: dict[str, str]) -> dict:
    from semclip.data.images import DEFAULT_MAX_PIXELS
    from semclip.evaluation.vlm_loop import VLMEvalConfig, evaluate_with_vlm
    from semclip.vlm.config import VLMConfig
    from semclip.vlm.loading import check_model_available

    check_model_available(args.vlm, flag="--vlm")
    shown = {"template": args.template} if getattr(args, "template", None) else {}
    vlm = VLMConfig(
        model=args.vlm,
        device=args.device,
        dtype=args.dtype or "auto",
        mode=args.mode or "logprob",
        **vlm_options(args),
        **shown,
    )
    config = VLMEvalConfig(
        vlm=vlm,
        dataset=args.dataset,
        split=args.split,
        columns=args.columns,
        scorers=scorers,
        ks=args.k,
        grid=args.grid,
        random_draws=args.random_draws,
        seed=args.seed,
        limit=args.limit,
        batch_size=args.batch_size,
        max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS,
        force=args.force,
        forced=args.forced,
        out_dir=args.out_dir,
    )
    return evaluate_with_vlm(config)


if __name__ == "__main__":
    raise SystemExit(main())
