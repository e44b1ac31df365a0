"""semclip-answer: one image and a multiple-choice question, answered by a VLM with SemClip.

    python answer.py --vlm llava-hf/llava-1.5-7b-hf --scorer runs/x/export \
        --image photo.jpg --question "What color is the star?" --choices red blue green
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import warnings
from pathlib import Path

from semclip.cli.errors import OneLineParser
from semclip.cli.threads import calm_openmp
from semclip.cli.vlm_flags import add_vlm_flags, check_vlm_flags, vlm_options

PROG = "semclip-answer"

EXAMPLES = """\
prints one line: the answer, its probability, and the crop(s) the VLM was shown; saves a picture
of the grid with the pick framed (--out).

examples:
  # the demo's trained scorer and tiny VLM (after `python demo.py`)
  semclip-answer --vlm demo_out/answering-llava --scorer demo_out/train/export \\
      --image demo_out/example.png --question "What color is the hexagon?" \\
      --choices blue green red yellow
  # LLaVA-1.5-7B on GPU, two crops from a 3x3 grid, a context line
  semclip-answer --vlm llava-hf/llava-1.5-7b-hf --scorer runs/x/export --grid 3 --k 2 \\
      --image chart.png --question "Which year is highest?" --choices 2019 2020 2021 \\
      --hint "A bar chart of sales."

A mistake is one line; --debug (or SEMCLIP_DEBUG=1) shows its traceback.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description="Answer one multiple-choice question about an image with a VLM and SemClip: "
        "the overview plus the crop(s) a scorer picks.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--vlm", required=True, help="VLM hub id or folder (required)")
    parser.add_argument(
        "--scorer",
        help="exported scorer folder, a stock CLIP/SigLIP hub id, vlm-psi (the VLM's own "
        "similarity) or random[:SEED]; leave it out for the plain VLM",
    )
    parser.add_argument("--image", required=True, help="image file (required)")
    parser.add_argument("--question", required=True, help="the question (required)")
    parser.add_argument("--choices", nargs="+", required=True, help="the options, in order")
    parser.add_argument("--hint", default="", help="context line shown before the question")
    parser.add_argument("--k", type=int, default=1, help="crops shown to the VLM (default: 1)")
    parser.add_argument(
        "--grid", type=int, help="grid n (default: the scorer's training grid, else 2)"
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    parser.add_argument("--dtype", default="auto", help="auto, bfloat16, float16 or float32")
    parser.add_argument(
        "--mode", default="logprob", help="logprob (one forward) or generate (default: logprob)"
    )
    parser.add_argument(
        "--out", default="semclip-answer.png", help="picture of the pick (default: %(default)s)"
    )
    add_vlm_flags(parser.add_argument_group("what the VLM sees (keep them as labels were made)"))
    return parser


def check_args(args: argparse.Namespace) -> None:
    """ValueError, naming the flag, for what a user can get wrong (before any model loads)."""
    from semclip.data.hub import looks_local

    if not Path(args.image).expanduser().is_file():
        raise ValueError(f"--image {args.image}: no such file")
    for flag, name in (("--vlm", args.vlm), ("--scorer", args.scorer)):
        if name and looks_local(name) and not Path(name).expanduser().is_dir():
            raise ValueError(f"{flag} {name}: no such folder")
    check_vlm_flags(args)
    if args.grid is None and args.scorer and looks_local(args.scorer):  # before any model loads
        from semclip.models.scorer_settings import saved_grid

        args.grid = saved_grid(args.scorer)
    if args.grid is not None and args.k > args.grid**2:
        raise ValueError(
            f"--k {args.k}: a {args.grid}x{args.grid} grid has 1..{args.grid**2} cells"
        )
    if args.k < 0 or (args.k > 0 and args.scorer is None):
        raise ValueError("--k needs --scorer (leave both out, or --k 0, for the plain VLM)")
    if len(args.choices) < 2:
        raise ValueError(
            "--choices needs at least two options (a question with one answers itself)"
        )
    if len(args.choices) > 26:
        raise ValueError(f"--choices: {len(args.choices)} options, but only 26 letters exist")
    out = Path(args.out).expanduser().resolve().parent
    while not out.exists():
        out = out.parent
    if not os.access(out, os.W_OK):
        raise ValueError(f"--out {args.out}: cannot write there")
    from semclip.cli.errors import check_device

    check_device(args.device)


def answer_text(answer, choices: list[str]) -> str:
    """What the VLM said: the option and its probability among the options."""
    index = answer.choice_index
    if index is None or not 0 <= index < len(choices):
        return f"no option ({answer.letter})"
    probs = [math.exp(v) for v in answer.logprobs]
    share = probs[index] / sum(probs)
    return f"{answer.letter}. {choices[index]} (p={share:.2f} among the options)"


def describe(answer, choices: list[str], scorer: str | None) -> str:
    """The one line a person reads: answer, probability, what the VLM was shown."""
    said = answer_text(answer, choices)
    if not answer.indices:
        return f"{said}; shown: the whole image only"
    n = answer.grid
    crops = ", ".join(f"#{i} at {tuple(b)}" for i, b in zip(answer.indices, answer.boxes))
    return f"{said}; shown: the whole image + crop {crops} of the {n}x{n} grid, picked by {scorer}"


def main(argv: list[str] | None = None) -> int:
    calm_openmp()  # before torch is imported
    from semclip.cli.errors import take_debug_flag, user_error

    args = build_parser().parse_args(take_debug_flag(argv))
    try:
        check_args(args)
        from semclip.vlm.loading import check_model_available

        check_model_available(args.vlm, flag="--vlm")
    except (ValueError, OSError) as err:
        return user_error(PROG, err)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    from semclip.data.images import ImageError, load_image
    from semclip.inference.semclip import SemClip
    from semclip.models.selector import Selection, selection_picture

    try:
        image = load_image(args.image, alpha=args.alpha or "drop")
        semclip = SemClip.from_pretrained(
            args.vlm,
            scorer=args.scorer,
            grid=args.grid,
            k=0,
            device=args.device,
            dtype=args.dtype,
            mode=args.mode,
            **vlm_options(args),
        )
        trained_for = getattr(semclip.scorer, "grid", None)
        if trained_for and trained_for != semclip.grid:
            print(
                f"{PROG}: warning: the scorer was trained on a {trained_for}x{trained_for} grid; "
                f"scoring a {semclip.grid}x{semclip.grid} one",
                file=sys.stderr,
            )
        if args.k > semclip.grid**2:
            raise ValueError(f"--k {args.k}: a {semclip.grid}x{semclip.grid} grid has "
                             f"{semclip.grid**2} cells")  # fmt: skip
        k = args.k if args.scorer else 0
        [answer] = semclip.answer([image], [args.question], [args.choices], [args.hint], k=k)
    except ImageError as err:
        return user_error(PROG, ValueError(f"--image {args.image}: {err}"))
    except (ValueError, OSError, ImportError) as err:
        return user_error(PROG, err)
    said = describe(answer, args.choices, args.scorer)
    print(said)
    if answer.indices:
        selection = Selection(
            indices=answer.indices,
            crops=[image.crop(box) for box in answer.boxes],
            boxes=answer.boxes,
            scores=answer.scores,
            grid=answer.grid,
        )
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        answered = answer_text(answer, args.choices)
        picture = selection_picture(image, selection, args.question, answer=answered, legend=True)
        picture.save(args.out)
        print(f"picture: {args.out} (red frame: the crop(s) shown to the VLM)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
