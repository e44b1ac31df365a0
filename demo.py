"""The built-in demo: the semclip pipeline on synthetic data and tiny models, on a CPU.

    python demo.py --out demo_out        (or: semclip-demo --out demo_out)

Stage 1 (data): generate the seeded synthetic set and draw its grids.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from semclip.data.images import load_image
from semclip.data.prompts import render_prompt
from semclip.data.synthetic import SyntheticConfig, save_synthetic
from semclip.data.visualize import contact_sheet, draw_grid


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="semclip-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_out", help="output folder")
    parser.add_argument("--grid", type=int, default=2, help="grid n (n x n cells)")
    parser.add_argument("--train-questions", type=int, default=2500, help="synthetic train rows")
    parser.add_argument("--test-questions", type=int, default=300, help="synthetic test rows")
    parser.add_argument("--image-size", type=int, default=128, help="synthetic image side (px)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic set")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    print(f"[1/1] synthetic set: {args.train_questions} train + {args.test_questions} test rows")
    config = SyntheticConfig(grid=args.grid, image_size=args.image_size, seed=args.seed)
    dd = save_synthetic(
        str(out / "synthetic"),
        config,
        {"train": args.train_questions, "test": args.test_questions},
    )
    pictures = []
    for row in dd["test"].select(range(min(8, len(dd["test"])))):
        caption = render_prompt(row["question"], row["choices"]).splitlines()[0]
        pictures.append(
            draw_grid(
                load_image(row["image"]), args.grid, chosen=row["relevant_cells"], caption=caption
            )
        )
    sheet_path = out / "synthetic_grids.png"
    contact_sheet(pictures).save(sheet_path)
    print(
        f"      saved to {out / 'synthetic'}; grids with the relevant cell outlined: {sheet_path}"
    )
    print(f"done in {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
