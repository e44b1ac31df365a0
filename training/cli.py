"""``semclip-train``: LightningCLI (fit, validate, test) plus ``export`` and ``push``.

semclip-train fit --config configs/train_demo.yaml
semclip-train fit --config configs/train_demo.yaml --ckpt_path last      # resume
semclip-train export --ckpt runs/demo/checkpoints/last.ckpt --out scorer/
semclip-train push model scorer/ user/semclip-scorer [--private]

The top-level help lives in ``train.py`` (it must not wait for Lightning to import).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from semclip.cli.errors import take_debug_flag, user_error
from semclip.training.data import ScorerDataModule, check_labels_dir, has_validation
from semclip.training.export import ExportBest, export_checkpoint
from semclip.training.module import ScorerModule

PROG = "semclip-train"


def _checkpoint_dir(root: str | None) -> str:
    return os.path.join(root or ".", "checkpoints")


def _export_dir(root: str | None) -> str:
    return os.path.join(root or ".", "export")


def _format_metric(value: float) -> str:
    return f"{value:.4g}"


class EpochLines(pl.Callback):
    """One line per epoch on stdout (epoch and logged metrics) when stdout is not a terminal: logs,
    CI and ``> file`` get progress; a terminal keeps the live bar instead."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if sys.stdout.isatty() or not trainer.is_global_zero or trainer.sanity_checking:
            return
        # validation ran just before this hook: its metrics are in callback_metrics already
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        shown = "  ".join(f"{k} {_format_metric(v)}" for k, v in sorted(metrics.items()))
        print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  {shown}", flush=True)


class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt``: the last finished epoch, rewritten at the end of every epoch.

    Lightning's ``save_last`` copies only when a top-k checkpoint is written, so after epochs that
    do not improve the monitor it still holds the best one, and a resume from it redoes them. This
    callback has no monitor: it saves every epoch, at the end of the training epoch, which comes
    after the epoch's validation and the best checkpoint (their state is in the file too).
    """

    def __init__(self, dirpath: str | None = None) -> None:
        """
        Args:
            dirpath: Folder of ``last.ckpt``; the CLI sets ``{default_root_dir}/checkpoints``.
        """
        super().__init__(
            dirpath=dirpath,
            filename=self.CHECKPOINT_NAME_LAST,
            monitor=None,
            save_top_k=1,  # without a monitor: the latest epoch, in place of the one before
            save_on_train_epoch_end=True,  # every epoch, also those that do not validate
            enable_version_counter=False,  # a resumed run rewrites last.ckpt, not last-v1.ckpt
        )


class ScorerCLI(LightningCLI):
    """Checkpoints under ``{default_root_dir}/checkpoints``: ``best-{epoch}-{step}.ckpt`` by
    validation hit rate (``--checkpoint.*``), exported after ``fit``, and ``last.ckpt``, the last
    finished epoch, so that ``--ckpt_path last`` resumes where the run stopped. Without validation
    (``--data.val_fraction 0`` and no ``--data.val_split``) there is nothing to rank epochs by: no
    ``best-*.ckpt`` is kept and the last epoch is exported. A new ``fit`` into a folder that
    already holds checkpoints stops with one line unless it resumes (``--ckpt_path``) or
    ``--overwrite`` is given (then the old checkpoints are deleted first)."""

    def __init__(self, *args, **kwargs) -> None:
        # a rerun in the same folder (resume) rewrites the saved config rather than aborting
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        given = kwargs.get("args")
        given = sys.argv[1:] if given is None else given
        self._given = [a for a in given if isinstance(a, str)] if isinstance(given, list) else []
        defaults = dict(kwargs.pop("trainer_defaults", None) or {})
        defaults["callbacks"] = [*defaults.get("callbacks", []), EpochLines()]
        super().__init__(*args, trainer_defaults=defaults, **kwargs)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        # no predict: the scorer has no predict_step; ranking a split is `test` or semclip-evaluate
        commands = dict(LightningCLI.subcommands())
        commands.pop("predict", None)
        return commands

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--overwrite",
            type=bool,
            default=False,
            help="fit: delete the checkpoints already in {default_root_dir}/checkpoints first",
        )
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/hit_rate",
                "checkpoint.mode": "max",
                "checkpoint.save_last": False,  # LastCheckpoint writes last.ckpt every epoch
                "checkpoint.save_top_k": 1,
                "checkpoint.filename": "best-{epoch}-{step}",
                "checkpoint.auto_insert_metric_name": False,
                # the live bar in a terminal; in logs and CI EpochLines prints a line per epoch
                "trainer.enable_progress_bar": sys.stdout.isatty(),
            }
        )
        parser.link_arguments(
            "trainer.default_root_dir",
            "checkpoint.dirpath",
            compute_fn=_checkpoint_dir,
        )
        parser.add_lightning_class_args(LastCheckpoint, "last_checkpoint")
        parser.link_arguments(
            "trainer.default_root_dir",
            "last_checkpoint.dirpath",
            compute_fn=_checkpoint_dir,
        )
        parser.add_lightning_class_args(ExportBest, "export")
        parser.link_arguments(
            "trainer.default_root_dir",
            "export.dirpath",
            compute_fn=_export_dir,
        )

    def before_instantiate_classes(self) -> None:
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        root = config.trainer.default_root_dir
        init_args = getattr(config.trainer.logger, "init_args", None)
        # a config names its logs' folder; --trainer.default_root_dir alone moves them along
        if (
            init_args is not None
            and "save_dir" in init_args
            and self._flag_given("--trainer.default_root_dir")
            and not self._flag_given("--trainer.logger")
        ):
            init_args.save_dir = root
        check_labels_dir(config.data.labels_dir)  # before the model loads (seconds, or a download)
        # last.ckpt is LastCheckpoint's: a save_last from an older saved config would add a stale
        # last-v1.ckpt beside it
        config.checkpoint.save_last = False
        if self.subcommand == "fit":
            _check_fresh_run(_checkpoint_dir(root), config.ckpt_path, config.overwrite)
            if not has_validation(config.data.val_split, config.data.val_fraction):
                _train_without_validation(config)

    def _flag_given(self, flag: str) -> bool:
        return any(a == flag or a.startswith((f"{flag}=", f"{flag}.")) for a in self._given)

    def after_fit(self) -> None:
        export = next((c for c in self.trainer.callbacks if isinstance(c, ExportBest)), None)
        if self.trainer.is_global_zero and export is not None and export.exported is not None:
            print(f"exported the scorer to {export.exported}", flush=True)


def _train_without_validation(config) -> None:
    """No validation set (``--data.val_fraction 0`` and no ``--data.val_split``): Lightning is told
    so (``limit_val_batches`` 0: it asks for no loader and warns of no empty one), and a ``val/``
    monitor, never logged, is dropped with its best file; ``last.ckpt`` keeps the run and the last
    epoch is exported. A monitor the user chose on a training metric stays."""
    config.trainer.limit_val_batches = 0
    if str(config.checkpoint.monitor or "").startswith("val/"):
        config.checkpoint.monitor = None
        config.checkpoint.save_top_k = 0


def _check_fresh_run(checkpoint_dir: str, ckpt_path: str | None, overwrite: bool) -> None:
    """Old checkpoints beside new ones would get ``-v1`` names and mix runs: refuse or clean."""
    old = sorted(Path(checkpoint_dir).glob("*.ckpt"))
    if not old or ckpt_path is not None:
        return
    if not overwrite:
        raise FileExistsError(
            f"{checkpoint_dir} already holds {len(old)} checkpoint(s): resume with --ckpt_path "
            "last, pass --overwrite true to delete them, or choose another "
            "--trainer.default_root_dir"
        )
    for path in old:
        path.unlink()


def _quiet() -> None:
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    if not sys.stderr.isatty():  # "Loading weights" bars are frames of noise in a log
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def _export_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} export",
        description="Turn a training checkpoint into a Hugging Face folder with a model card.",
    )
    parser.add_argument("--ckpt", required=True, help="Lightning checkpoint of the scorer")
    parser.add_argument("--out", required=True, help="output folder (HF format + model card)")
    args = parser.parse_args(argv)
    print(export_checkpoint(args.ckpt, args.out))
    return 0


def _push_main(argv: list[str]) -> int:
    from semclip.training.hub import push_label_set, push_model

    parser = argparse.ArgumentParser(
        prog=f"{PROG} push",
        description="Upload an exported scorer or a label set to the Hugging Face Hub.",
    )
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


def _subcommand(args: list[str]) -> str:
    return f"{args[0]} " if args and not args[0].startswith("-") else ""


def main(argv: list[str] | None = None) -> int:
    args = take_debug_flag(argv)
    argv = args if argv is not None or len(args) != len(sys.argv) - 1 else None
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    _quiet()
    try:
        if args and args[0] == "export":
            return _export_main(args[1:])
        if args and args[0] == "push":
            return _push_main(args[1:])
        # argv None: LightningCLI reads sys.argv itself (and warns when given both)
        # exit_on_error False: a flag mistake is raised (one line below), not jsonargparse's usage
        kwargs = {"prog": PROG, "exit_on_error": False}
        ScorerCLI(ScorerModule, ScorerDataModule, args=argv, parser_kwargs=kwargs)
    except argparse.ArgumentError as err:  # an unknown flag, a value of the wrong type, a file
        flat = ValueError(" ".join(str(err).split()))  # jsonargparse spreads one error on lines
        return user_error(PROG, flat, f" (see {PROG} {_subcommand(args)}--help)")
    except (OSError, ValueError) as err:  # a path, a model, a dataset or a value the user gave
        return user_error(PROG, err)
    return 0
