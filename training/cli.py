"""``semclip-train``: LightningCLI (fit, validate, test) plus ``export`` and ``push``.

semclip-train fit --config configs/train_demo.yaml
semclip-train fit --config configs/train_demo.yaml --ckpt_path last      # resume
semclip-train export --ckpt runs/demo/checkpoints/last.ckpt --out scorer/
semclip-train push model scorer/ user/semclip-scorer [--private]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from semclip.training.data import ScorerDataModule
from semclip.training.export import ExportBest, export_checkpoint
from semclip.training.module import ScorerModule


def _checkpoint_dir(root: str | None) -> str:
    return os.path.join(root or ".", "checkpoints")


def _export_dir(root: str | None) -> str:
    return os.path.join(root or ".", "export")


class ScorerCLI(LightningCLI):
    """Checkpoints under ``{default_root_dir}/checkpoints``: the best by validation hit rate, and
    ``last.ckpt`` so that ``--ckpt_path last`` resumes."""

    def __init__(self, *args, **kwargs) -> None:
        # a rerun in the same folder (resume) rewrites the saved config rather than aborting
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/hit_rate",
                "checkpoint.mode": "max",
                "checkpoint.save_last": True,
                "checkpoint.save_top_k": 1,
                "checkpoint.filename": "best-{epoch}-{step}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.link_arguments(
            "trainer.default_root_dir",
            "checkpoint.dirpath",
            compute_fn=_checkpoint_dir,
        )
        parser.add_lightning_class_args(ExportBest, "export")
        parser.link_arguments(
            "trainer.default_root_dir",
            "export.dirpath",
            compute_fn=_export_dir,
        )


def _quiet() -> None:
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")


def _export_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="semclip-train export")
    parser.add_argument("--ckpt", required=True, help="Lightning checkpoint of the scorer")
    parser.add_argument("--out", required=True, help="output folder (HF format + model card)")
    args = parser.parse_args(argv)
    print(export_checkpoint(args.ckpt, args.out))
    return 0


def _push_main(argv: list[str]) -> int:
    from semclip.training.hub import push_label_set, push_model

    parser = argparse.ArgumentParser(prog="semclip-train push")
    parser.add_argument(
        "kind", choices=["model", "labels"], help="an exported scorer or a label set"
    )
    parser.add_argument("folder", help="exported scorer folder or label-set folder")
    parser.add_argument("repo_id", help="target repository, e.g. user/semclip-scorer")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--branch", default=None, help="branch to push to (created if missing)")
    parser.add_argument("--message", default=None, help="commit message")
    args = parser.parse_args(argv)
    push = push_model if args.kind == "model" else push_label_set
    url = push(
        args.folder,
        args.repo_id,
        private=args.private,
        branch=args.branch,
        commit_message=args.message,
    )
    print(url)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    _quiet()
    if args and args[0] == "export":
        return _export_main(args[1:])
    if args and args[0] == "push":
        return _push_main(args[1:])
    ScorerCLI(ScorerModule, ScorerDataModule, args=argv, parser_kwargs={"prog": "semclip-train"})
    return 0
