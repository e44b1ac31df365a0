"""Shared test world: offline hub settings, tiny models and the synthetic set (session-scoped)."""

from __future__ import annotations

import os
import tempfile

# Set before transformers / huggingface_hub are imported anywhere: they read these at import.
_HF_HOME = tempfile.mkdtemp(prefix="semclip-hf-")
os.environ.setdefault("HF_HOME", _HF_HOME)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from semclip.cli.threads import calm_openmp  # noqa: E402

calm_openmp()  # as the command lines do: threads sleep on a busy machine (before torch loads)

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory) -> str:
    from semclip.models.tiny import build_tiny_llava

    return str(build_tiny_llava(tmp_path_factory.mktemp("tiny-llava")))


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> str:
    from semclip.models.tiny import build_tiny_clip

    return str(build_tiny_clip(tmp_path_factory.mktemp("tiny-clip")))


@pytest.fixture(scope="session")
def small_labels(synthetic_dir, tmp_path_factory) -> str:
    """The synthetic set's train and test splits labelled by the simulated evaluator."""
    from semclip.labeling.config import LabelConfig
    from semclip.labeling.run import run_labeling

    out = tmp_path_factory.mktemp("labels")
    cfg = LabelConfig.from_values(
        dataset=synthetic_dir,
        splits=["train", "test"],
        evaluator="simulated",
        min_visible=0.3,
        output_dir=str(out),
        accelerator="cpu",
        progress=False,
    )
    run_labeling(cfg)
    return str(out)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> str:
    from semclip.data.synthetic import SyntheticConfig, save_synthetic

    out = tmp_path_factory.mktemp("synthetic") / "set"
    save_synthetic(str(out), SyntheticConfig(grid=2, image_size=96), {"train": 24, "test": 12})
    return str(out)


def pytest_runtest_setup(item) -> None:
    """Say which long test is running, so a quiet terminal is not mistaken for a hang."""
    if item.get_closest_marker("slow") is not None:
        reporter = item.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write(f"\n[slow] {item.nodeid} ... ")


HEAVY_MODULES = ("torch", "lightning", "transformers", "datasets")


@pytest.fixture
def heavy_imports_for_help():
    """The heavy modules a CLI imports to answer ``--help``, in a fresh interpreter: what makes
    ``--help`` take seconds (counted rather than timed, so a busy machine cannot fail it)."""
    import subprocess
    import sys

    def run(module: str) -> list[str]:
        code = (
            "import sys\n"
            f"from {module} import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            f"print('HEAVY:' + ','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
        )
        (line,) = [x for x in done.stdout.splitlines() if x.startswith("HEAVY:")]
        return [m for m in line.removeprefix("HEAVY:").split(",") if m]

    return run
