"""semclip-label: distant-supervision labels from a VLM (see ``semclip.labeling``).

    python label.py --dataset derek-thomas/ScienceQA --splits train validation --grid 2 \
        --output-dir labels/llava15-7b-n2
    python label.py --config configs/label_demo.yaml
"""

from __future__ import annotations

import json
import logging
import warnings


def _error(err: BaseException) -> int:
    """A mistake the user can fix: one line on stderr, exit code 2 (--debug: the traceback)."""
    from semclip.cli.errors import user_error

    return user_error("semclip-label", err)


def main(argv: list[str] | None = None) -> int:
    from semclip.cli.errors import take_debug_flag
    from semclip.cli.threads import calm_openmp

    calm_openmp()  # before torch is imported
    from semclip.labeling.config import parse_label_config
    from semclip.vlm.loading import check_model_available

    argv = take_debug_flag(argv)
    try:
        # light imports only: --help and flag mistakes answer at once
        config = parse_label_config(argv)
        if config.evaluator == "hf":  # before minutes of retries
            check_model_available(config.vlm.model, config.vlm.revision)
    except (ValueError, OSError) as err:
        return _error(err)
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.utilities import rank_zero_only

    from semclip.data.labels import LabelSetMismatchError
    from semclip.data.scienceqa import DatasetError
    from semclip.labeling.evaluator import ScoringError
    from semclip.labeling.run import run_labeling  # torch and Lightning
    from semclip.vlm.render import PromptFormatError

    # After Lightning's import, which sets its own loggers' levels.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for name in ("lightning.pytorch", "lightning.fabric", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*predict returned None.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    try:
        summary = run_labeling(config)
    except ImportError as err:  # a VLM family's processor needs a package that is missing
        return _error(err)
    except OSError as err:  # a model or dataset that cannot be found or fetched
        return _error(err)
    except (DatasetError, LabelSetMismatchError) as err:  # a split, column or output folder
        return _error(err)
    except PromptFormatError as err:  # a chat template the processor does not have
        return _error(err)
    except ScoringError as err:  # every question failed in the model: its setup, not a row
        return _error(err)
    except MisconfigurationException as err:  # --accelerator / --devices this machine lacks
        return _error(ValueError(f"--accelerator/--devices/--strategy: {err}"))
    if rank_zero_only.rank == 0:  # under DDP every rank returns here: one summary
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
