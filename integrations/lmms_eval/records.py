"""Per-sample selection records in a file beside lmms-eval's output.

lmms-eval's ``--log_samples`` files drop each request's ``arguments`` (where the in-process
``simple_evaluate(...)["samples"]`` keep the ``{"semclip": ...}`` record), so with
``selections=DIR`` the plugin also appends one JSON line per request to
``DIR/<task>.jsonl``: ``doc_id`` and ``split`` (the join keys of the samples file), then the
grid, ``k``, chosen ``cells`` best first, their ``boxes``, every cell's ``scores`` and the
``scorer_text``.
"""

from __future__ import annotations

import json
from pathlib import Path


class SelectionLog:
    """Appends selection records, one JSON line each, per task (and rank when several)."""

    def __init__(self, folder: str | Path, rank: int = 0, world_size: int = 1) -> None:
        self.folder = Path(folder)
        self.suffix = f".rank{rank}" if world_size > 1 else ""

    def path(self, task: str) -> Path:
        return self.folder / f"{task}{self.suffix}.jsonl"

    def write(self, entries: list[tuple[str, str, int, dict]]) -> None:
        """Append ``(task, split, doc_id, record)`` entries."""
        self.folder.mkdir(parents=True, exist_ok=True)
        by_task: dict[str, list[str]] = {}
        for task, split, doc_id, record in entries:
            line = json.dumps({"doc_id": doc_id, "split": split, **record}, ensure_ascii=False)
            by_task.setdefault(task, []).append(line)
        for task, lines in by_task.items():
            with self.path(task).open("a", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
