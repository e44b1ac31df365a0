"""semclip-train: fine-tune the relevance scorer (see ``semclip.training``).

python train.py fit --config configs/train_demo.yaml
python train.py fit --config configs/train_paper.yaml --ckpt_path last
python train.py export --ckpt runs/paper/checkpoints/last.ckpt --out scorer/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SUBCOMMANDS = {
    "fit": "train the scorer; checkpoints, logs and the exported best model go under "
    "--trainer.default_root_dir",
    "validate": "hit rate, MRR and loss on the validation questions (--ckpt_path)",
    "test": "hit rate and MRR on --data.test_split (--ckpt_path)",
    "export": "turn a checkpoint into a Hugging Face folder with a model card",
    "push": "upload an exported scorer or a label set to the Hugging Face Hub",
}

EXAMPLES = """examples:
  semclip-train fit --config configs/train_demo.yaml
  semclip-train fit --config configs/train_demo.yaml --ckpt_path last     # resume
  semclip-train fit --config configs/train_demo.yaml --overwrite true     # start over
  semclip-train test --config configs/train_demo.yaml --ckpt_path last
  semclip-train export --ckpt demo_out/train/checkpoints/last.ckpt --out scorer/
  semclip-train push model scorer/ user/semclip-scorer --private

`semclip-train SUBCOMMAND --help` lists a subcommand's options and their defaults.
A mistake is one line; --debug (or SEMCLIP_DEBUG=1) shows its traceback."""


def help_parser() -> argparse.ArgumentParser:
    """The top-level parser, for ``--help`` only: answers without importing Lightning."""
    parser = argparse.ArgumentParser(
        prog="semclip-train",
        description="Fine-tune the SemClip relevance scorer on a label set made by label.py.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    for name, text in SUBCOMMANDS.items():
        commands.add_parser(name, help=text)
    return parser


def main(argv: list[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    args = [a for a in given if a != "--debug"]  # training/cli.py takes --debug itself
    if not args or args[0] in ("-h", "--help"):
        if not args:
            names = ", ".join(SUBCOMMANDS)
            print(f"semclip-train: error: choose a subcommand: {names} (--help)", file=sys.stderr)
            return 2
        help_parser().print_help()
        return 0
    if args[0] not in SUBCOMMANDS:
        names = ", ".join(SUBCOMMANDS)
        print(
            f"semclip-train: error: unknown subcommand {args[0]!r}; choose {names}", file=sys.stderr
        )
        return 2
    from semclip.cli.errors import debugging, take_debug_flag, user_error
    from semclip.data.labels import labels_dir_error

    take_debug_flag(given)
    labels_dir = None if debugging() else _given_labels_dir(args)  # --debug: the CLI's traceback
    error = labels_dir_error(labels_dir) if labels_dir is not None else None
    if error is not None:  # answered before Lightning is imported (seconds on a busy machine)
        return user_error("semclip-train", error)
    from semclip.cli.threads import calm_openmp

    calm_openmp()  # before torch is imported
    from semclip.training.cli import main as cli_main

    return cli_main(argv)


def _given_labels_dir(args: list[str]) -> str | None:
    """The ``--data.labels_dir`` given on the command line (or in a ``--config`` file when not
    there); ``None`` when neither names one (the CLI checks the rest)."""
    value = None
    for i, arg in enumerate(args):
        if arg == "--data.labels_dir" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--data.labels_dir="):
            value = arg.split("=", 1)[1]
    if value is None:
        configs = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--config"]
        for config in configs:
            try:
                import yaml

                loaded = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
                data = loaded.get("data") if isinstance(loaded, dict) else None
                value = data.get("labels_dir", value) if isinstance(data, dict) else value
            except (OSError, ValueError, AttributeError):  # the CLI reports a bad file itself
                continue
    return value


if __name__ == "__main__":
    raise SystemExit(main())
