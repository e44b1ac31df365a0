"""Every VLM family on its tiny model (fp32): the fast paths against a plain full forward.

The reference for a row is one forward of the processor's complete output for that (overview,
cell, prompt), read at the last token: what the model would see without any of our batching,
padding or caching. Families whose processor needs torchvision (the Qwen-VLs, LLaVA-OneVision,
SmolVLM, InternVL, Mistral 3) run on the real torchvision: the test command installs the torch
and torchvision pair that the registry has. Where it is absent they are skipped, saying why.
"""

from __future__ import annotations

import pytest
import torch

from semclip.data.scienceqa import records_with_images
from semclip.data.synthetic import SyntheticConfig, build_synthetic
from semclip.labeling.evaluator import prepare_item
from semclip.labeling.hf_evaluator import HFEvaluator
from semclip.vlm.config import VLMConfig
from semclip.vlm.families import FAMILIES, build_tiny_vlm

NAMES = sorted(FAMILIES)


def test_every_registered_family_has_a_tiny_builder():
    import importlib

    for family in FAMILIES.values():
        module, name = family.tiny_builder.split(":")
        assert callable(getattr(importlib.import_module(module), name)), family.name


@pytest.fixture(scope="module", params=NAMES)
def family(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def family_dir(family, tmp_path_factory) -> str:
    missing = FAMILIES[family].missing_packages()
    if missing:
        pytest.skip(f"{family}'s processor needs {missing}")
    return str(build_tiny_vlm(family, tmp_path_factory.mktemp(family)))


@pytest.fixture(scope="module")
def items():
    ds = build_synthetic(SyntheticConfig(num_questions=3, grid=2, image_size=96, seed=5))
    recs, _ = records_with_images(ds, "train")
    recs[1].hint = "A longer context line that makes this prompt longer than the others."
    recs[2].question = "<b>" + recs[2].question  # starts like an image placeholder
    return [prepare_item(r, 2) for r in recs]


def evaluator(model_dir: str, **kwargs) -> HFEvaluator:
    return HFEvaluator(VLMConfig(model=model_dir, device="cpu", **kwargs), grid=2)


def flat(scores) -> torch.Tensor:
    return torch.tensor([row for s in scores for row in [*s.cell_logprobs, s.base_logprobs]])


def reference(ev: HFEvaluator, items) -> torch.Tensor:
    """Each row alone: the processor's complete output, one plain forward, the last token."""
    out = []
    with torch.no_grad():
        for item in items:
            ids = ev.vlm.letter_ids(item.letters)
            for text, images in ev.vlm.question_rows(item):
                inputs = ev.vlm.process([text], [images])
                logits = ev.vlm.model(**inputs).logits[0, -1]
                out.append(torch.log_softmax(logits, -1)[ids])
    return torch.stack(out)


def test_builds_are_byte_identical(family, family_dir, tmp_path):
    from pathlib import Path

    again = build_tiny_vlm(family, tmp_path / "again")
    for file in ("model.safetensors", "tokenizer.json"):
        assert (Path(family_dir) / file).read_bytes() == (again / file).read_bytes(), file


def test_fast_paths_equal_the_full_forward(family_dir, items):
    shared = evaluator(family_dir, max_rows=64)
    plain = evaluator(family_dir, prefix_sharing=False, max_rows=64)
    expected = reference(plain, items)
    torch.testing.assert_close(flat(plain.score(items)), expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(flat(shared.score(items)), expected, atol=1e-4, rtol=0)
    shared.vlm.max_rows = 3  # several forwards per question, rows of different lengths
    torch.testing.assert_close(flat(shared.score(items)), expected, atol=1e-4, rtol=0)
    if shared.family.independent_images:
        # the prefix really was shared: no question fell back to whole rows
        assert shared.prefix_sharing and shared.whole_rows == 0
    else:
        assert not shared.prefix_sharing


def test_generate_first_step_equals_letter_scores(family_dir, items):
    generator = evaluator(family_dir, mode="generate", max_new_tokens=1)
    # as in some published generation configs (Qwen2-VL: 1.05): the raw logits are what count
    generator.vlm.model.generation_config.repetition_penalty = 1.5
    gen = generator.score(items[:1])
    one = evaluator(family_dir).score(items[:1])
    torch.testing.assert_close(flat(gen), flat(one), atol=1e-4, rtol=0)
    assert all(a in ("A", "B", "C", "D", "unparsed") for a in gen[0].cell_answers)


def test_overview_first_and_one_bos(family_dir, items):
    ev = evaluator(family_dir)
    item = items[0]
    text, images = ev.vlm.question_rows(item)[0]
    assert images[0] is item.overview  # the overview comes first, then the cell
    given = ev.vlm.process([text], [images])
    swapped = ev.vlm.process([text], [images[::-1]])
    differs = [
        k
        for k, v in given.items()
        if isinstance(v, torch.Tensor)
        and (v.shape != swapped[k].shape or not torch.equal(v, swapped[k]))
    ]
    assert differs, "swapping overview and cell must change what the model receives"
    bos = ev.vlm.tokenizer.bos_token_id
    if bos is not None:
        assert int((given["input_ids"][0] == bos).sum()) == 1


@pytest.mark.parametrize("mode", ["logprob", "generate"])
def test_label_cli_end_to_end(family_dir, synthetic_dir, tmp_path, mode, capsys):
    from semclip.data.labels import read_info, read_labels
    from semclip.label import main

    argv = [
        *("--dataset", synthetic_dir, "--splits", "test", "--limit", "2", "--grid", "2"),
        *("--evaluator", "hf", "--model", family_dir, "--mode", mode, "--max-new-tokens", "1"),
        *("--output-dir", str(tmp_path), "--accelerator", "cpu", "--no-progress"),
    ]
    assert main(argv) == 0
    table = read_labels(tmp_path, "test")
    assert table.column("status").to_pylist() == ["labelled"] * 2
    assert all(len(c) == 4 for c in table.column("cell_logprobs").to_pylist())
    info = read_info(tmp_path)
    family = FAMILIES[info.family]
    assert info.family != "unknown"
    assert info.prefix_sharing is (mode == "logprob" and family.independent_images)


NO_TORCHVISION = """
import importlib.metadata as metadata
import sys

# as on a machine without torchvision: it cannot be imported, found or looked up
sys.modules["torchvision"] = None
found = metadata.distribution


def distribution(name):
    if name.lower() == "torchvision":
        raise metadata.PackageNotFoundError(name)
    return found(name)


metadata.distribution = distribution
from semclip.label import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llava_next", "idefics3", "gemma3", "qwen2_5_vl", "smolvlm"])
def test_without_torchvision(family, synthetic_dir, tmp_path):
    """Families whose processor needs no torchvision label without it; the others say in one
    line what to install."""
    import os
    import subprocess
    import sys

    from semclip.vlm.families import FAMILIES as families

    if families[family].missing_packages():
        pytest.skip(f"{family}'s tiny model cannot be built here without torchvision")
    model_dir = str(build_tiny_vlm(family, tmp_path / "model"))
    argv = [
        *("--dataset", synthetic_dir, "--splits", "test", "--limit", "1", "--grid", "2"),
        *("--evaluator", "hf", "--model", model_dir, "--output-dir", str(tmp_path / "labels")),
        *("--accelerator", "cpu", "--no-progress"),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(
        [sys.executable, "-c", NO_TORCHVISION, *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if "torchvision" not in families[family].needs:
        assert run.returncode == 0, run.stderr[-2000:]
    else:
        assert run.returncode == 2
        last = run.stderr.strip().splitlines()[-1]
        assert "Traceback" not in run.stderr
        assert last.startswith("semclip-label: error:") and "pip install torchvision" in last


def test_images_of_different_sizes(family_dir, items):
    """Overviews of different sizes: prefixes of different lengths for size-dependent families,
    so the questions are grouped by prefix length; still equal to the full forward."""
    from semclip.data.grid import crop_grid
    from semclip.labeling.evaluator import LabelItem

    ev = evaluator(family_dir, max_rows=5)
    if ev.family.name not in ("llava_next", "qwen2_5_vl", "idefics3", "mistral3", "internvl"):
        pytest.skip("the other families' token counts do not depend on the image size")
    mixed = list(items)
    for q, size in [(0, (112, 40)), (2, (40, 96))]:
        overview = items[q].overview.resize(size)
        mixed[q] = LabelItem(
            **{**vars(items[q]), "overview": overview, "cells": crop_grid(overview, 2)}
        )
    expected = reference(ev, mixed)
    torch.testing.assert_close(flat(ev.score(mixed)), expected, atol=1e-4, rtol=0)
    assert ev.whole_rows == 0


def test_a_question_without_an_exact_prefix_is_scored_whole(tiny_llava_dir, items, monkeypatch):
    import semclip.vlm.shared_prefix as module
    from semclip.vlm.sharing import plan_question

    ev = evaluator(tiny_llava_dir)
    expected = reference(ev, items)
    calls = []

    def second_fails(*args):
        calls.append(args)
        return None if len(calls) == 2 else plan_question(*args)

    monkeypatch.setattr(module, "plan_question", second_fails)
    torch.testing.assert_close(flat(ev.score(items)), expected, atol=1e-4, rtol=0)
    assert ev.whole_rows == 1


def test_rows_are_right_padded_whatever_the_processor_default(family, family_dir, items, tmp_path):
    """A checkpoint whose tokenizer config does not say: the processor's own default decides
    (left for InternVL), and the evaluator must still pad on the right."""
    import json
    import shutil

    copy = shutil.copytree(family_dir, tmp_path / "left")
    config_file = copy / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config.pop("padding_side", None)
    config_file.write_text(json.dumps(config))
    ev = evaluator(str(copy), max_rows=4)
    expected = reference(ev, items[:2])
    torch.testing.assert_close(flat(ev.score(items[:2])), expected, atol=1e-4, rtol=0)
    ev.config.prefix_sharing = False
    torch.testing.assert_close(flat(ev.score(items[:2])), expected, atol=1e-4, rtol=0)


def test_out_of_memory_in_the_prefix_forward_halves_the_group(tiny_llava_dir, items, monkeypatch):
    ev = evaluator(tiny_llava_dir)
    expected = flat(ev.score(items))
    real = ev.shared._score_group
    sizes = []

    def picky(group, *args):
        sizes.append(len(group))
        if len(group) > 1:
            raise torch.cuda.OutOfMemoryError("fake")
        return real(group, *args)

    monkeypatch.setattr(ev.shared, "_score_group", picky)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    torch.testing.assert_close(flat(ev.score(items)), expected, atol=1e-5, rtol=0)
    assert sizes == [3, 1, 2, 1, 1]
