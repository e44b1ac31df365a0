"""The wheel installs one `semclip` package, never top-level `data`/`models`."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_only_semclip(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("semclip-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"semclip", next(t for t in tops if t.endswith(".dist-info"))}
    for module in (
        "semclip/__init__.py",
        "semclip/data/grid.py",
        "semclip/label.py",
        "semclip/train.py",
        "semclip/evaluate.py",
        "semclip/demo.py",
        "semclip/configs/train_demo.yaml",
        "semclip/models/tiny.py",
        "semclip/models/tiny_vlms/qwen.py",
        "semclip/vlm/families.py",
        "semclip/vlm/runtime.py",
        "semclip/evaluation/vlm_loop.py",
        "semclip/cli/errors.py",
        "semclip/demo_vlm.py",
        "semclip/configs/label_qwen2_5_vl_scienceqa.yaml",
        "semclip/labeling/__init__.py",
        "semclip/training/__init__.py",
    ):
        assert module in names
    assert not any(name.startswith("semclip/tests/") for name in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    for script in ("label", "train", "evaluate", "demo"):
        assert f"semclip-{script} = semclip.{script}:main" in text
