"""A tiny LLaVA that really answers the synthetic questions, trained on a CPU in under a minute.

A fixture of the demo (``demo.py``), beside it. The random tiny LLaVA of ``models/tiny.py`` runs
the labeling code path but its answers are noise; this one is the same architecture
(``LlavaForConditionalGeneration``: a CLIP vision tower and a small Llama) trained from scratch
on the synthetic set exactly as LLaVA-1.5 is used for labeling:
``USER: <image>\\n<image>\\n{prompt} ASSISTANT:`` with the overview first and a grid cell second
(or the overview alone), both square-padded, and the option letter as the next token. The inputs
come from the LLaVA processor itself, so the model is trained on what the labeling code feeds it.

The synthetic set is drawn so that the overview is not enough (``answering_synthetic_config``):
on a 2x2 grid the four objects take the four colours of ``PALETTE``, one each, and the options are
those four colours, alphabetically. The overview, shrunk to 32 px, shows every colour but blurs the
small shapes, so it leaves the model near chance; the right cell, once it fills the input, shows
the asked shape and its colour; a wrong cell shows another object, so its answer is wrong. (With
the options in random order the model must also learn to look a colour up among the options: a
tiny model trained from scratch stayed at chance on that for over 1000 steps.)

    python -m semclip.demo_vlm --out tiny-answering-llava

trains it (under a minute on a CPU) and prints the held-out accuracy with the right cell, the
overview alone and a wrong cell (kept with the training curve in ``answering.json``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from semclip.data.grid import crop_grid
from semclip.data.images import load_image, pad_to_square, processor_background
from semclip.data.prompts import option_letters, render_prompt
from semclip.data.synthetic import SyntheticConfig, make_example
from semclip.models.tiny import TinyLlavaConfig, tiny_llava_config, tiny_llava_processor
from semclip.vlm.render import answer_tail, letter_ids, render_input
from semclip.vlm.rows import right_pad

logger = logging.getLogger(__name__)

PROMPT_FORMAT = "llava15"

#: Held-out questions measured for a progress line (the full set is measured at the end).
PROGRESS_QUESTIONS = 50

#: The accuracies and the training curve, written beside the checkpoint.
REPORT = "answering.json"

#: Four well-separated hues: every image of a 2x2 grid shows all four, one per object.
PALETTE = ("blue", "green", "red", "yellow")


@dataclass
class AnsweringConfig:
    """How the answering tiny LLaVA is shaped, what it is trained on and for how long."""

    steps: int = 300
    """Optimizer steps."""
    batch_size: int = 32
    """Rows (questions shown one way) per step."""
    lr: float = 2e-3
    """Peak AdamW learning rate (linear warm-up, cosine decay)."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    warmup: int = 30
    """Warm-up steps."""
    train_questions: int = 800
    """Synthetic questions to train on (split ``vlm-train``)."""
    test_questions: int = 200
    """Held-out synthetic questions the accuracies are measured on (split ``vlm-test``)."""
    grid: int = 2
    """Grid n: each question gives n*n cell rows and one overview row."""
    image_size: int = 128
    """Side of the synthetic images, in pixels."""
    min_object: float = 0.45
    """Smallest object side, as a fraction of the cell side (synthetic set)."""
    max_object: float = 0.85
    """Largest object side, as a fraction of the cell side (synthetic set)."""
    right_share: float = 0.8
    """Share of training rows showing the overview and the right cell (the only rows whose answer
    can be seen: with 0.5, seed 1 stalled at 0.75-0.88 right-cell accuracy, one colour confused)."""
    wrong_share: float = 0.1
    """Share showing the overview and a wrong cell (the rest: the overview alone)."""
    model: TinyLlavaConfig = field(
        default_factory=lambda: TinyLlavaConfig(
            image_size=32, patch_size=8, hidden_size=64, vision_hidden_size=64, num_layers=2
        )
    )
    """Shape of the tiny LLaVA (its ``seed`` is replaced by the training seed)."""

    def validate(self) -> None:
        if self.steps < 0:
            raise ValueError("--steps must be >= 0")
        if self.batch_size < 1:
            raise ValueError("--batch-size must be >= 1")
        if self.train_questions < 1 or self.test_questions < 1:
            raise ValueError("--train-questions and --test-questions must be >= 1")
        if self.grid != 2:  # the set gives each of the palette's colours to one object
            raise ValueError(f"--grid must be 2 (got {self.grid}): four objects, four colours")
        shares = (self.right_share, self.wrong_share)
        if min(shares) < 0 or sum(shares) > 1:
            raise ValueError("--right-share and --wrong-share must be >= 0 with a sum <= 1")


def answering_synthetic_config(
    num_questions: int = 200,
    grid: int = 2,
    image_size: int = 128,
    seed: int = 0,
    min_object: float = 0.45,
    max_object: float = 0.85,
) -> SyntheticConfig:
    """The synthetic set the answering model is made for: distinct colours, options from them."""
    return SyntheticConfig(
        num_questions=num_questions,
        grid=grid,
        image_size=image_size,
        min_object=min_object,
        max_object=max_object,
        seed=seed,
        palette=PALETTE,
        distinct_colors=True,
        choices_from_image=True,
        sort_choices=True,
    )


def question_letter_ids(processor, letters: Sequence[str]) -> list[int]:
    """Token id of each option letter as the next token after the prompt (as labeling reads it)."""
    tail = answer_tail(render_input(processor, PROMPT_FORMAT, "x", 1))
    return letter_ids(processor.tokenizer, tail, letters)


@dataclass
class EncodedQuestion:
    """One question as the processor encodes it: both texts and every image it can be shown."""

    two: torch.Tensor
    """``(T2,)`` ids of the overview + cell row."""
    one: torch.Tensor
    """``(T1,)`` ids of the overview-only row."""
    pixels: torch.Tensor
    """``(1 + n*n, 3, H, W)``: the overview, then the cells row-major."""
    target: int
    """Token id of the right letter."""
    letters: list[int]
    """Token ids of the question's letters."""
    relevant: int
    """Index of the cell that holds the asked object."""


def encode_question(processor, row: dict, grid: int) -> EncodedQuestion:
    """Encode one synthetic row with the LLaVA processor, as the VLM runtime builds its rows."""
    background = processor_background(processor.image_processor)
    image = load_image(row["image"])
    views = [pad_to_square(image, background)]
    views += [pad_to_square(cell.image, background) for cell in crop_grid(image, grid)]
    prompt = render_prompt(row["question"], row["choices"], row["hint"])
    two = render_input(processor, PROMPT_FORMAT, prompt, 2)
    one = render_input(processor, PROMPT_FORMAT, prompt, 1)
    text = processor(
        text=[two, one], images=[views[:2], views[:1]], padding=True, return_tensors="pt"
    )
    mask = text["attention_mask"].bool()
    pixels = processor.image_processor(images=views, return_tensors="pt")["pixel_values"]
    ids = question_letter_ids(processor, option_letters(len(row["choices"])))
    return EncodedQuestion(
        two=text["input_ids"][0][mask[0]],
        one=text["input_ids"][1][mask[1]],
        pixels=pixels,
        target=ids[row["answer"]],
        letters=ids,
        relevant=row["relevant_cells"][0],
    )


def encode_split(processor, config: AnsweringConfig, split: str, count: int, seed: int):
    synthetic = answering_synthetic_config(
        count, config.grid, config.image_size, seed, config.min_object, config.max_object
    )
    synthetic.validate()
    return [
        encode_question(processor, make_example(synthetic, i, split), config.grid)
        for i in range(count)
    ]


def collate(
    questions: Sequence[EncodedQuestion], cells: Sequence[int | None], pad_id: int
) -> dict[str, torch.Tensor]:
    """A right-padded batch: row i shows ``questions[i]``'s overview and cell ``cells[i]``
    (``None``: the overview alone). Also returns ``last`` (the answer position) and ``target``."""
    ids, mask = right_pad([q.one if c is None else q.two for q, c in zip(questions, cells)], pad_id)
    pixels = []
    for q, c in zip(questions, cells):
        pixels.append(q.pixels[:1] if c is None else q.pixels[[0, 1 + c]])
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "pixel_values": torch.cat(pixels),
        "last": mask.sum(dim=1) - 1,
        "target": torch.tensor([q.target for q in questions]),
    }


def answer_logits(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(B, V)`` next-token logits at each row's last real token."""
    out = model.model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        pixel_values=batch["pixel_values"],
        use_cache=False,
    )
    hidden = out.last_hidden_state[torch.arange(len(batch["last"])), batch["last"]]
    return model.lm_head(hidden)


@torch.no_grad()
def measure(model, questions: Sequence[EncodedQuestion], pad_id: int, batch_size: int = 64):
    """Held-out accuracy (argmax over the question's letters) with the right cell, the overview
    alone and a wrong cell (every wrong cell counted)."""
    model.eval()
    rows = []
    for q in questions:
        n_cells = len(q.pixels) - 1
        rows += [(q, c, "right" if c == q.relevant else "wrong") for c in range(n_cells)]
        rows.append((q, None, "overview"))
    hits: dict[str, list[bool]] = {"right": [], "overview": [], "wrong": []}
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        batch = collate([r[0] for r in chunk], [r[1] for r in chunk], pad_id)
        logits = answer_logits(model, batch)
        for (q, _, kind), row_logits in zip(chunk, logits):
            pick = q.letters[int(row_logits[q.letters].argmax())]
            hits[kind].append(pick == q.target)
    return {kind: sum(h) / max(1, len(h)) for kind, h in hits.items()}


def _sample_rows(rng: random.Random, questions, config: AnsweringConfig):
    picked, cells = [], []
    for _ in range(config.batch_size):
        q = questions[rng.randrange(len(questions))]
        u = rng.random()
        n_cells = len(q.pixels) - 1
        if u < config.right_share:
            cell = q.relevant
        elif u < config.right_share + config.wrong_share and n_cells > 1:
            cell = rng.choice([c for c in range(n_cells) if c != q.relevant])
        else:
            cell = None
        picked.append(q)
        cells.append(cell)
    return picked, cells


def train_answering_llava(
    out_dir: str | Path,
    seed: int = 0,
    config: AnsweringConfig | None = None,
    eval_every: int = 0,
    progress: Callable[[str], None] | None = None,
    progress_seconds: float = 10.0,
) -> Path:
    """Train the answering tiny LLaVA and save it (model + processor) to ``out_dir``.

    Seeded: the same seed (and thread count) gives the same ``model.safetensors``. The held-out
    accuracies (every ``eval_every`` steps too, when set) go to ``answering.json`` beside it.
    ``progress`` gets a line at least every ``progress_seconds``: the step, the loss and the
    held-out accuracy so far (right cell, on the first test questions; measuring changes no
    weight and draws no random number, so the model is the same with or without it).
    """
    from transformers import LlavaForConditionalGeneration

    config = config or AnsweringConfig()
    config.validate()
    shape = TinyLlavaConfig(**{**config.model.__dict__, "seed": seed})
    processor = tiny_llava_processor(shape)
    pad_id = processor.tokenizer.pad_token_id
    start = time.perf_counter()
    if progress is not None:
        progress(f"encoding {config.train_questions} + {config.test_questions} questions")
    train = encode_split(processor, config, "vlm-train", config.train_questions, seed)
    test = encode_split(processor, config, "vlm-test", config.test_questions, seed)
    encode_seconds = time.perf_counter() - start

    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(tiny_llava_config(shape, processor.tokenizer))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )

    def factor(step: int) -> float:  # linear warm-up, then cosine to zero
        if step < config.warmup:
            return (step + 1) / config.warmup
        progress = (step - config.warmup) / max(1, config.steps - config.warmup)
        return 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    rng = random.Random(f"semclip-answering/{seed}")
    curve, train_seconds = [], 0.0
    last_line = time.perf_counter()
    for step in range(1, config.steps + 1):
        tick = time.perf_counter()
        model.train()
        batch = collate(*_sample_rows(rng, train, config), pad_id)
        loss = torch.nn.functional.cross_entropy(answer_logits(model, batch), batch["target"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        train_seconds += time.perf_counter() - tick
        if progress is not None and time.perf_counter() - last_line >= progress_seconds:
            right = measure(model, test[:PROGRESS_QUESTIONS], pad_id)["right"]
            progress(
                f"step {step}/{config.steps}, loss {loss.item():.3f}, held-out accuracy with the "
                f"right cell {right:.0%} ({train_seconds:.0f} s)"
            )
            last_line = time.perf_counter()
        if step == config.steps or (eval_every and step % eval_every == 0):
            point = {"step": step, "train_seconds": round(train_seconds, 1)}
            curve.append({**point, **measure(model, test, pad_id)})
            logger.info("step %d, loss %.3f: %s", step, loss.item(), curve[-1])
    if not curve:  # zero steps: still measure the untrained model
        curve.append({"step": 0, "train_seconds": 0.0, **measure(model, test, pad_id)})

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(out)
    processor.save_pretrained(out)
    report = {
        "seed": seed,
        "threads": torch.get_num_threads(),
        "encode_seconds": round(encode_seconds, 1),
        "train_seconds": round(train_seconds, 1),
        "accuracy": {k: curve[-1][k] for k in ("right", "overview", "wrong")},
        "curve": curve,
        "config": {**asdict(config), "model": asdict(shape)},
    }
    (out / REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m semclip.demo_vlm", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", required=True, help="folder to save the checkpoint in")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the weights")
    parser.add_argument(
        "--eval-every", type=int, default=0, help="also measure every N steps (the curve)"
    )
    defaults = AnsweringConfig()
    for f in fields(AnsweringConfig):
        if f.name != "model":
            value = getattr(defaults, f.name)
            flag = "--" + f.name.replace("_", "-")
            parser.add_argument(flag, type=type(value), default=value, help=f"default {value}")
    for f in fields(TinyLlavaConfig):
        value = getattr(defaults.model, f.name)
        if f.name != "seed" and isinstance(value, int):
            flag = "--vlm-" + f.name.replace("_", "-")
            parser.add_argument(flag, type=int, default=value, help=f"default {value}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    shape = {
        f.name: getattr(args, "vlm_" + f.name)
        for f in fields(TinyLlavaConfig)
        if hasattr(args, "vlm_" + f.name)
    }
    config = AnsweringConfig(
        **{f.name: getattr(args, f.name) for f in fields(AnsweringConfig) if f.name != "model"},
        model=TinyLlavaConfig(**shape),
    )
    out = train_answering_llava(args.out, args.seed, config, eval_every=args.eval_every)
    report = json.loads((out / REPORT).read_text(encoding="utf-8"))
    acc = report["accuracy"]
    print(
        f"{out}: {config.steps} steps in {report['train_seconds']:.0f} s "
        f"({report['threads']} threads; data {report['encode_seconds']:.0f} s); held-out "
        f"accuracy over {config.test_questions} questions: right cell {acc['right']:.3f}, "
        f"overview alone {acc['overview']:.3f}, wrong cell {acc['wrong']:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
