"""semclip-train: fine-tune the relevance scorer (see ``semclip.training``).

python train.py fit --config configs/train_demo.yaml
python train.py fit --config configs/train_paper.yaml --ckpt_path last
python train.py export --ckpt runs/paper/checkpoints/last.ckpt --out scorer/
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    from semclip.training.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
