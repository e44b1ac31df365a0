"""The built-in demo: the whole paper on a CPU, every number from the real code paths.

    python demo.py --out demo_out        (or: semclip-demo --out demo_out)

1. data:     a seeded synthetic set (coloured shapes on a grid; "What color is the star?"), drawn
             so that the overview at the VLM's 32 px input is not enough and the right crop is
2. VLM:      a tiny LLaVA trained on CPU to answer it as LLaVA-1.5 is used (built once, reused)
3. labels:   that VLM's own right/wrong answers per cell, through the HF evaluator
4. training: a tiny CLIP scorer trained from scratch on those labels (margin ranking loss)
5. results:  the VLM in the loop: plain VLM vs SemClip (k = 1) vs random crop vs oracle, the
             paper's Table 2 in miniature, pictures of the picks, and semclip-answer on one image

``--evaluator simulated`` labels with the simulated evaluator (no VLM) and evaluates from the
stored labels; ``--evaluator tiny-llava`` runs the labeling path on a random tiny LLaVA (noise).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path

from semclip.cli.threads import calm_openmp
from semclip.data.images import load_image
from semclip.data.prompts import render_prompt
from semclip.data.synthetic import SyntheticConfig, save_synthetic
from semclip.data.visualize import PICK, RELEVANT, contact_sheet, draw_grid

CONFIG = Path(__file__).resolve().parent / "configs" / "train_demo.yaml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="semclip-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_out", help="output folder")
    parser.add_argument("--grid", type=int, default=2, help="grid n (n x n cells)")
    parser.add_argument("--train-questions", type=int, default=2500, help="synthetic train rows")
    parser.add_argument("--test-questions", type=int, default=300, help="synthetic test rows")
    parser.add_argument("--image-size", type=int, default=128, help="synthetic image side (px)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic set")
    parser.add_argument(
        "--evaluator",
        choices=["tiny-vlm", "simulated", "tiny-llava"],
        default="tiny-vlm",
        help="who labels: a tiny LLaVA trained to answer the synthetic questions (default; "
        "evaluated with the VLM in the loop), the simulated evaluator (no VLM), or a tiny random "
        "LLaVA (its labels are noise: it shows the path runs, not that it teaches)",
    )
    parser.add_argument("--tiny-llava-questions", type=int, default=40, help="rows it labels")
    parser.add_argument("--epochs", type=int, default=None, help="override the demo config")
    return parser


def selections_sheet(selector, test, grid: int, right: int = 4, wrong: int = 4):
    """Up to ``right`` right and ``wrong`` wrong picks of the selector on the first test rows
    (right: the pick is one of the ``relevant_cells`` the synthetic set records), on one sheet."""
    from semclip.models.selector import selection_picture

    rows = test.select(range(min(200, len(test))))
    images = [load_image(r["image"]) for r in rows]
    selections = selector.select(images, rows["question"], k=1, grid=grid)
    kept: dict[bool, list] = {True: [], False: []}
    for image, selection, row in zip(images, selections, rows):
        is_right = selection.indices[0] in row["relevant_cells"]
        if len(kept[is_right]) < (right if is_right else wrong):
            picture = selection_picture(
                image, selection, row["question"], relevant=row["relevant_cells"]
            )
            kept[is_right].append(picture)
    found = f"{len(kept[True])} right and {len(kept[False])} wrong picks"
    return contact_sheet(
        kept[True] + kept[False],
        title=f"What the trained selector picks on held-out questions ({found} shown)",
        legend=[
            (PICK, "red frame: the selector's pick (the cell it scores highest)"),
            (RELEVANT, "blue frame: the relevant cell (ground truth); RIGHT = the pick is one"),
            (
                None,
                "bar and number under each cell: its share of the softmax over the cells' "
                "scores, on a fixed 0-100% scale (the shares of an image sum to 100%)",
            ),
        ],  # fmt: skip
    )


STAGES = 4


def stage(number: int, text: str) -> None:
    print(f"\n[{number}/{STAGES}] {text}", flush=True)


def build_answering_vlm(out: Path, seed: int) -> Path:
    """The answering tiny LLaVA for ``seed``: built once, then reused from ``out``."""
    from semclip.demo_vlm import REPORT, train_answering_llava

    report = out / REPORT
    if report.exists() and json.loads(report.read_text(encoding="utf-8")).get("seed") == seed:
        print(f"      reusing {out} (built earlier with seed {seed})")
    else:
        print(f"      training it on CPU (about a minute): {out}", flush=True)
        train_answering_llava(
            out, seed=seed, progress=lambda line: print(f"      {line}", flush=True)
        )
    done = json.loads(report.read_text(encoding="utf-8"))
    acc = done["accuracy"]
    print(
        f"      {out}: held-out accuracy with the right cell {acc['right']:.0%}, the overview "
        f"alone {acc['overview']:.0%}, a wrong cell {acc['wrong']:.0%} "
        f"(trained in {done['train_seconds']:.0f} s)"
    )
    return out


def answer_example(out: Path, vlm: Path, scorer: Path, row: dict) -> None:
    """semclip-answer on one held-out image, as a user would run it."""
    from semclip.answer import main as answer_main

    image = out / "example.png"
    load_image(row["image"]).save(image)
    argv = ["--vlm", str(vlm), "--scorer", str(scorer), "--image", str(image),
            "--question", row["question"], "--choices", *row["choices"], "--device", "cpu",
            "--out", str(out / "example_pick.png")]  # fmt: skip
    shown = " ".join(f'"{a}"' if " " in a else a for a in argv)
    print(f"      $ semclip-answer {shown}")
    answer_main(argv)


def main(argv: list[str] | None = None) -> int:
    global STAGES
    busy = calm_openmp()  # before torch is imported: the demo stays fast on a busy machine
    if busy is not None:
        print(f"{busy:.1f} cores are busy with other work: OpenMP threads sleep while they wait")
    args = build_parser().parse_args(argv)
    counts = ("train_questions", "test_questions", "tiny_llava_questions", "image_size")
    for name in (n for n in counts if getattr(args, n) < 1):
        flag = "--" + name.replace("_", "-")
        print(
            f"semclip-demo: error: {flag} must be >= 1, got {getattr(args, name)}", file=sys.stderr
        )
        return 2
    if args.epochs is not None and args.epochs < 1:
        print(f"semclip-demo: error: --epochs must be >= 1, got {args.epochs}", file=sys.stderr)
        return 2
    if args.evaluator == "tiny-vlm" and args.grid != 2:
        print("semclip-demo: error: --evaluator tiny-vlm needs --grid 2", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings(
        "ignore", message=".*(LeafSpec|predict returned None|many workers|args parameter).*"
    )
    from semclip.demo_vlm import answering_synthetic_config
    from semclip.labeling.config import LabelConfig
    from semclip.labeling.run import run_labeling
    from semclip.models.selector import Selector
    from semclip.models.tiny import build_tiny_clip, build_tiny_llava
    from semclip.train import main as train_main

    for name in ("lightning.pytorch", "lightning.fabric"):  # after Lightning's import sets INFO
        logging.getLogger(name).setLevel(logging.WARNING)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with_vlm = args.evaluator == "tiny-vlm"
    STAGES = 5 if with_vlm else 4
    step = iter(range(1, STAGES + 1))

    stage(next(step), f"synthetic set: {args.train_questions} train + {args.test_questions} test")
    if with_vlm:  # distinct colours, the options are the image's colours: the shape decides
        config = answering_synthetic_config(
            grid=args.grid, image_size=args.image_size, seed=args.seed
        )
    else:
        config = SyntheticConfig(grid=args.grid, image_size=args.image_size, seed=args.seed)
    splits = {"train": args.train_questions, "test": args.test_questions}
    dd = save_synthetic(str(out / "synthetic"), config, splits)
    pictures = []
    for row in dd["test"].select(range(min(8, len(dd["test"])))):
        caption = render_prompt(row["question"], row["choices"]).splitlines()[0]
        image = load_image(row["image"])
        pictures.append(
            draw_grid(image, args.grid, relevant=row["relevant_cells"], caption=caption)
        )
    contact_sheet(
        pictures,
        title=f"Synthetic test questions, each image cut into a {args.grid}x{args.grid} grid",
        legend=[
            (RELEVANT, "blue frame: the cell holding the shape the question asks about"),
            (None, "#i: cell index (row-major); cells are shown apart, their pixels unchanged"),
        ],
    ).save(out / "synthetic_grids.png")
    clip_dir = build_tiny_clip(out / "tiny-clip")
    print(f"      grids with the relevant cell framed in blue: {out / 'synthetic_grids.png'}")

    vlm = None
    if with_vlm:
        stage(next(step), "a tiny LLaVA that answers: trained on CPU as LLaVA-1.5 is used")
        vlm = build_answering_vlm(out / "answering-llava", args.seed)

    stage(next(step), f"labels from the {args.evaluator} evaluator")
    labels = out / {"simulated": "labels", "tiny-vlm": "labels-vlm"}.get(
        args.evaluator, "labels-tiny-llava"
    )
    label_config = LabelConfig(
        dataset=str(out / "synthetic"),
        splits=["train", "test"],
        grid=args.grid,
        evaluator="simulated",
        output_dir=str(labels),
        accelerator="cpu",
        overwrite=True,  # the demo's folder: a rerun (another seed) replaces it
    )
    if with_vlm:
        label_config.evaluator, label_config.vlm.model = "hf", str(vlm)
        label_config.batch_size = 16
    elif args.evaluator == "tiny-llava":
        label_config.evaluator = "hf"
        label_config.vlm.model = str(build_tiny_llava(out / "tiny-llava"))
        label_config.limit = args.tiny_llava_questions
    summary = run_labeling(label_config)
    for split, s in summary["splits"].items():
        print(
            f"      {split}: {s['labelled']} labelled, overview-only accuracy "
            f"{s['baseline_accuracy']:.0%}, oracle {s['oracle_accuracy']:.0%}, "
            f"{s['with_positive_and_negative']:.0%} with a right and a wrong cell"
        )

    stage(
        next(step),
        "training the tiny CLIP scorer (margin ranking loss, best checkpoint by hit rate)",
    )
    train_dir = out / "train"
    export = train_dir / "export"
    scorers = {}
    if summary["splits"]["train"]["with_positive_and_negative"] == 0:
        print(
            "      no train question has both a right and a wrong cell (a random VLM answers the "
            "same whatever it sees): nothing to rank, training skipped"
        )
    else:
        train_args = [
            "fit",
            "--config", str(CONFIG),
            f"--trainer.default_root_dir={train_dir}",
            "--trainer.logger.init_args.save_dir", str(train_dir),
            f"--model.model={clip_dir}",
            f"--data.labels_dir={labels}",
            "--overwrite", "true",
        ]  # fmt: skip
        if args.epochs is not None:
            train_args.append(f"--trainer.max_epochs={args.epochs}")
        if train_main(train_args) != 0:  # its one line is printed: the demo cannot go on
            return 2
        print(f"      exported scorer (HF format + model card): {export}")
        scorers = {"zero-shot (untrained CLIP)": str(clip_dir), "trained scorer": str(export)}

    if with_vlm:
        stage(next(step), "SemClip with the VLM in the loop, on the held-out test split")
        results = evaluate_in_the_loop(out, vlm, scorers)
        acc = results["accuracy"]
        if scorers:
            print(
                f"SemClip (trained scorer, k=1) {acc['trained scorer (k=1)']:.1%} vs plain VLM "
                f"{acc['plain VLM (k=0)']:.1%}, random crop {acc['random (k=1)']:.1%}, oracle "
                f"{acc['oracle (k=1)']:.1%}"
            )
            answer_example(out, vlm, export, dd["test"][0])
    else:
        stage(next(step), "evaluation on the held-out test split (no VLM re-run)")
        results = evaluate_stored(out, labels, scorers)
    if scorers:
        selector = Selector.from_pretrained(export, device="cpu")
        sheet = selections_sheet(selector, dd["test"], args.grid)
        sheet.save(out / "selections.png")
        print(
            f"pictures: {out / 'selections.png'} (red frame: the trained selector's pick, blue: "
            f"the relevant cell), {out / 'eval' / 'accuracy.png'}"
        )
    print(f"done in {time.perf_counter() - start:.0f}s")
    return 0


def evaluate_in_the_loop(out: Path, vlm: Path, scorers: dict[str, str]) -> dict:
    from semclip.evaluation.vlm_loop import VLMEvalConfig, evaluate_with_vlm
    from semclip.vlm.config import VLMConfig

    results = evaluate_with_vlm(
        VLMEvalConfig(
            vlm=VLMConfig(model=str(vlm), device="cpu"),
            dataset=str(out / "synthetic"),
            split="test",
            scorers=scorers,
            ks=[1],
            grid=2,
            batch_size=16,
            out_dir=str(out / "eval"),
        )
    )
    print((out / "eval" / "table.md").read_text())
    return results


def evaluate_stored(out: Path, labels: Path, scorers: dict[str, str]) -> dict:
    from semclip.evaluation.stored import EvalConfig, evaluate

    results = evaluate(
        EvalConfig(
            labels_dir=str(labels),
            split="test",
            scorers=scorers,
            ks=[1],
            device="cpu",
            out_dir=str(out / "eval"),
        )
    )
    print((out / "eval" / "table.md").read_text())
    if scorers:
        acc = results["accuracy"]
        print(
            f"accuracy: trained scorer {acc['trained scorer']:.1%} vs random crop "
            f"{acc['random crop']:.1%}, zero-shot {acc['zero-shot (untrained CLIP)']:.1%}, "
            f"oracle {acc['oracle']:.1%}"
        )
    return results


if __name__ == "__main__":
    raise SystemExit(main())
