"""semclip-label for a new user: mistakes end in one line at once, ``--help`` is fast and complete.

Every case goes through the real entry point, offline (``conftest`` sets ``HF_HUB_OFFLINE=1`` and a
fresh ``HF_HOME``, so no hub id is cached); the unreachable-hub cases stand in a failing request.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import huggingface_hub
import pytest

import semclip.labeling.run  # noqa: F401  (torch and Lightning: imported here, not timed below)
from semclip.cli.dataclass_args import build_parser
from semclip.label import main
from semclip.labeling.config import EXAMPLES, PROG, LabelConfig
from semclip.vlm.config import DEFAULT_VLM

LABEL_PY = Path(__file__).resolve().parents[1] / "label.py"


def run_main(argv: list[str], capsys) -> tuple[int, list[str], float]:
    start = time.perf_counter()
    code = main(argv)
    elapsed = time.perf_counter() - start
    return code, capsys.readouterr().err.strip().splitlines(), elapsed


def assert_one_line(code: int, lines: list[str], elapsed: float, *needles: str) -> None:
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith("semclip-label: error: ")
    for needle in needles:
        assert needle in lines[0]
    assert elapsed < 5


def test_a_mistyped_dataset_folder_is_reported_at_once(tmp_path, monkeypatch, capsys):
    (tmp_path / "demo_out" / "synthetic").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    # Relative, with an existing first component: a path, not a hub id (default evaluator: hf,
    # so this also shows no model is looked for first).
    result = run_main(["--dataset", "demo_out/synthtic"], capsys)
    assert_one_line(*result, "no such folder or file: demo_out/synthtic")
    for source in ("./nowhere", str(tmp_path / "nowhere"), "~/semclip-nowhere", "x/*.parquet"):
        result = run_main(["--dataset", source, "--evaluator", "simulated"], capsys)
        assert_one_line(*result, f"no such folder or file: {source}")


def test_an_uncached_hub_dataset_offline_fails_fast(tmp_path, capsys):
    argv = ["--dataset", "nobody/no-such-dataset", "--evaluator", "simulated"]
    argv += ["--output-dir", str(tmp_path / "labels"), "--accelerator", "cpu", "--no-progress"]
    result = run_main(argv, capsys)
    assert_one_line(*result, "dataset nobody/no-such-dataset", "local save_to_disk folder")


def test_an_unreachable_hub_is_one_line_without_retries(tmp_path, monkeypatch, capsys):
    import datasets

    def no_network(*args, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", no_network)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    argv = ["--dataset", "nobody/no-such-dataset", "--evaluator", "simulated"]
    argv += ["--output-dir", str(tmp_path / "labels"), "--accelerator", "cpu", "--no-progress"]
    result = run_main(argv, capsys)
    assert_one_line(*result, "nobody/no-such-dataset", "cannot be reached", "HF_HUB_OFFLINE=1")
    result = run_main(["--dataset", "nobody/no-such-dataset"], capsys)
    assert_one_line(*result, f"--model {DEFAULT_VLM}", "cannot be reached")


def test_an_uncached_hub_model_offline_fails_fast(synthetic_dir, capsys):
    # A bare run's model: the line names it and says what to do.
    result = run_main(["--dataset", synthetic_dir], capsys)
    assert_one_line(*result, f"--model {DEFAULT_VLM}", "local model folder")
    result = run_main(["--dataset", synthetic_dir, "--model", "nobody/no-such-vlm"], capsys)
    assert_one_line(*result, "--model nobody/no-such-vlm")


@pytest.mark.parametrize("grid", ["0", "9"])
def test_grid_outside_1_to_8_is_refused(grid, capsys):
    result = run_main(["--grid", grid, "--evaluator", "simulated"], capsys)
    assert_one_line(*result, f"--grid must be an integer in 1..8, got {grid}")


def test_flag_and_config_mistakes_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--grid", "two"])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--grid" in lines[0]
    result = run_main(["--config", str(tmp_path / "missing.yaml")], capsys)
    assert_one_line(*result, "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("grid: [2\n")
    assert_one_line(*run_main(["--config", str(bad)], capsys), "not valid YAML")


def test_help_shows_defaults_examples_and_the_grid_range(heavy_imports_for_help):
    done = subprocess.run(
        [sys.executable, str(LABEL_PY), "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())  # argparse wraps at the terminal's width
    assert heavy_imports_for_help("semclip.label") == []
    for expected in (
        "(default: derek-thomas/ScienceQA)",
        f"(default: {DEFAULT_VLM})",
        "(default: 2)",
        "(default: train)",
        "(default: None)",
        "1..8",
        "examples:",
        "python label.py --dataset demo_out/synthetic --splits train test",
        "downloaded from the Hugging Face Hub",
    ):
        assert expected in text, expected
    assert "``" not in text
    parser = build_parser(LabelConfig, PROG, EXAMPLES)
    assert text.count("(default:") == len(parser._actions) - 2  # all but -h and --config
    assert "--device " not in text  # Lightning places the VLM: not a flag of the labeling job


def test_building_the_parser_imports_nothing_heavy():
    code = (
        "import sys\n"
        "from semclip.cli.dataclass_args import build_parser\n"
        "from semclip.labeling.config import EXAMPLES, PROG, LabelConfig\n"
        "build_parser(LabelConfig, PROG, EXAMPLES).format_help()\n"
        "print(sorted(m for m in ('torch', 'transformers', 'lightning', 'datasets')"
        " if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_yaml_nests_the_vlm_config_or_names_its_fields_flat(tmp_path):
    from semclip.labeling.config import parse_label_config

    nested = tmp_path / "nested.yaml"
    nested.write_text("grid: 3\nvlm:\n  mode: generate\n  max_rows: 8\n")
    config = parse_label_config(["--config", str(nested), "--max-rows", "4"])
    assert (config.grid, config.vlm.mode, config.vlm.max_rows) == (3, "generate", 4)
    flat = tmp_path / "flat.yaml"
    flat.write_text("mode: generate\nmodel: some/vlm\n")
    config = parse_label_config(["--config", str(flat)])
    assert (config.vlm.mode, config.vlm.model) == ("generate", "some/vlm")
    bad = tmp_path / "bad.yaml"
    bad.write_text("vlm:\n  mdoe: generate\n")
    with pytest.raises(ValueError, match="unknown key.*mdoe.*under vlm"):
        parse_label_config(["--config", str(bad)])
