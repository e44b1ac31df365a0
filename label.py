"""semclip-label: distant-supervision labels from a VLM (see ``semclip.labeling``).

    python label.py --dataset derek-thomas/ScienceQA --splits train validation --grid 2 \
        --output-dir labels/llava15-7b-n2
    python label.py --config configs/label_demo.yaml
"""

from __future__ import annotations

import json
import logging
import sys
import warnings


def main(argv: list[str] | None = None) -> int:
    from semclip.labeling.config import parse_config
    from semclip.labeling.run import run_labeling

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for name in ("lightning.pytorch", "lightning.fabric", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*predict returned None.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    try:
        config = parse_config(argv)
    except ValueError as err:
        print(f"semclip-label: error: {err}", file=sys.stderr)
        return 2
    try:
        summary = run_labeling(config)
    except ImportError as err:  # a VLM family's processor needs a package that is missing
        print(f"semclip-label: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a model or dataset that cannot be found or fetched
        print(f"semclip-label: error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
