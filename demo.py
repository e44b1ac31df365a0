"""The built-in demo: the whole semclip pipeline on synthetic data and tiny models, on a CPU.

    python demo.py --out demo_out        (or: semclip-demo --out demo_out)

1. data:     a seeded synthetic set (coloured shapes on a grid; "What color is the star?")
2. labels:   the simulated evaluator (default), or the real VLM code path on a tiny random LLaVA
3. training: a tiny CLIP trained from scratch with the margin ranking loss (configs/train_demo.yaml)
4. results:  overview / random / majority / oracle / zero-shot / trained, as the paper's Table 2,
             a bar chart, and pictures of what the trained selector picks
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

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
        choices=["simulated", "tiny-llava"],
        default="simulated",
        help="who labels: the simulated evaluator, or the real HF code path on a tiny random "
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


def stage(number: int, text: str) -> None:
    print(f"\n[{number}/4] {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings(
        "ignore", message=".*(LeafSpec|predict returned None|many workers|args parameter).*"
    )
    from semclip.labeling.config import LabelConfig
    from semclip.labeling.run import run_labeling
    from semclip.models.selector import Selector
    from semclip.models.tiny import build_tiny_clip, build_tiny_llava
    from semclip.train import main as train_main
    from semclip.training.evaluate import EvalConfig, evaluate

    for name in ("lightning.pytorch", "lightning.fabric"):  # after Lightning's import sets INFO
        logging.getLogger(name).setLevel(logging.WARNING)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    stage(1, f"synthetic set: {args.train_questions} train + {args.test_questions} test rows")
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

    stage(2, f"labels from the {args.evaluator} evaluator")
    labels = out / ("labels" if args.evaluator == "simulated" else "labels-tiny-llava")
    label_config = LabelConfig(
        dataset=str(out / "synthetic"),
        splits=["train", "test"],
        grid=args.grid,
        evaluator="simulated",
        output_dir=str(labels),
        accelerator="cpu",
    )
    if args.evaluator == "tiny-llava":
        label_config.evaluator = "hf"
        label_config.model = str(build_tiny_llava(out / "tiny-llava"))
        label_config.limit = args.tiny_llava_questions
    summary = run_labeling(label_config)
    for split, s in summary["splits"].items():
        print(
            f"      {split}: {s['labelled']} labelled, overview-only accuracy "
            f"{s['baseline_accuracy']:.0%}, oracle {s['oracle_accuracy']:.0%}, "
            f"{s['with_positive_and_negative']:.0%} with a right and a wrong cell"
        )

    stage(3, "training the tiny CLIP scorer (margin ranking loss, best checkpoint by hit rate)")
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
        ]  # fmt: skip
        if args.epochs:
            train_args.append(f"--trainer.max_epochs={args.epochs}")
        train_main(train_args)
        print(f"      exported scorer (HF format + model card): {export}")
        scorers = {"zero-shot (untrained CLIP)": str(clip_dir), "trained scorer": str(export)}

    stage(4, "evaluation on the held-out test split (no VLM re-run)")
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
    if not scorers:
        print(f"done in {time.perf_counter() - start:.0f}s")
        return 0
    selector = Selector.from_pretrained(export, device="cpu")
    sheet = selections_sheet(selector, dd["test"], args.grid)
    sheet.save(out / "selections.png")
    acc = results["accuracy"]
    print(
        f"accuracy: trained scorer {acc['trained scorer']:.1%} vs random crop "
        f"{acc['random crop']:.1%}, zero-shot {acc['zero-shot (untrained CLIP)']:.1%}, "
        f"oracle {acc['oracle']:.1%}"
    )
    print(
        f"pictures: {out / 'selections.png'} (red frame: the trained selector's pick, blue: the "
        f"relevant cell), {out / 'eval' / 'accuracy.png'}"
    )
    print(f"done in {time.perf_counter() - start:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
