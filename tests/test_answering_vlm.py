"""The answering tiny LLaVA: deterministic builds, training rows equal to the labeling rows, and
(slow) real answers through the labeling code path."""

from __future__ import annotations

import hashlib

import torch

from semclip.data.scienceqa import records_with_images
from semclip.data.synthetic import build_synthetic, make_example
from semclip.demo_vlm import (
    AnsweringConfig,
    answering_synthetic_config,
    collate,
    encode_question,
    main,
    train_answering_llava,
)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def short_run(out, seed: int = 0):
    config = AnsweringConfig(steps=3, batch_size=4, train_questions=6, test_questions=2)
    return train_answering_llava(out, seed=seed, config=config)


def test_same_seed_same_bytes(tmp_path):
    a, b = short_run(tmp_path / "a"), short_run(tmp_path / "b")
    assert digest(a / "model.safetensors") == digest(b / "model.safetensors")
    assert (a / "answering.json").is_file() and (a / "processor_config.json").is_file()
    other = short_run(tmp_path / "c", seed=1)
    assert digest(other / "model.safetensors") != digest(a / "model.safetensors")


def test_progress_lines_change_nothing(tmp_path):
    """A line at least every N seconds (here: every step) with the step and the held-out
    accuracy, and the very same weights as a quiet run."""
    lines = []
    config = AnsweringConfig(steps=3, batch_size=4, train_questions=6, test_questions=2)
    loud = train_answering_llava(
        tmp_path / "loud", config=config, progress=lines.append, progress_seconds=0
    )
    quiet = short_run(tmp_path / "quiet")
    assert digest(loud / "model.safetensors") == digest(quiet / "model.safetensors")
    assert lines[0].startswith("encoding") and sum("step" in line for line in lines) == 3
    assert "held-out accuracy with the right cell" in lines[-1]


def test_training_rows_are_the_labeling_rows(tmp_path):
    """A collated training row equals what the VLM runtime builds for the same view."""
    from semclip.labeling.evaluator import prepare_item
    from semclip.labeling.hf_evaluator import HFEvaluator
    from semclip.vlm.config import VLMConfig

    out = short_run(tmp_path / "m")
    evaluator = HFEvaluator(VLMConfig(model=str(out), device="cpu"), grid=2)
    synthetic = answering_synthetic_config(2, seed=3)
    ds = build_synthetic(synthetic, "test")
    records, _ = records_with_images(ds, "test")
    for record, row in zip(records, ds):
        item = prepare_item(record, 2)
        encoded = encode_question(evaluator.vlm.processor, row, grid=2)
        assert encoded.target == evaluator.vlm.letter_ids(item.letters)[item.answer]
        for cell in (1, None):
            ours = collate([encoded], [cell], evaluator.vlm.tokenizer.pad_token_id)
            images = [item.overview] + ([] if cell is None else [item.cells[cell].image])
            vlm = evaluator.vlm
            theirs = vlm.process([vlm.render(item.prompt, len(images))], [images])
            assert torch.equal(ours["input_ids"], theirs["input_ids"])
            torch.testing.assert_close(ours["pixel_values"], theirs["pixel_values"])


def test_main_writes_a_loadable_checkpoint(tmp_path, capsys):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    argv = ["--out", str(tmp_path / "cli"), "--steps", "2", "--batch-size", "2"]
    assert main([*argv, "--train-questions", "4", "--test-questions", "2"]) == 0
    assert "right cell" in capsys.readouterr().out
    AutoProcessor.from_pretrained(tmp_path / "cli")
    AutoModelForImageTextToText.from_pretrained(tmp_path / "cli")


def test_the_set_it_is_made_for():
    config = answering_synthetic_config(20)
    for index in range(20):
        row = make_example(config, index)
        assert row["choices"] == sorted(config.palette)  # every object's colour, in one order
