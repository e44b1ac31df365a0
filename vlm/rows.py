"""Rows of a processor output: unpadded per-row ids and per-token inputs, and right padding.

A processor call on a batch returns right-padded tensors; :func:`rows_of` takes them apart into
:class:`Row` objects (padding removed), :func:`pad_rows` puts rows back together, and
:func:`image_inputs` keeps what is not per token (pixels, per-image inputs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

KEYS = ("input_ids", "attention_mask")


@dataclass(frozen=True)
class Row:
    """One unpadded row of a processor output: ids and the per-token inputs beside them."""

    ids: torch.Tensor  # (T,)
    tokens: dict[str, torch.Tensor]  # each (T,)

    def __len__(self) -> int:
        return len(self.ids)

    def slice(self, start: int, stop: int | None = None) -> Row:
        return Row(self.ids[start:stop], {k: v[start:stop] for k, v in self.tokens.items()})

    def __add__(self, other: Row) -> Row:
        keys = self.tokens.keys() | other.tokens.keys()
        tokens = {k: torch.cat([_get(self, k), _get(other, k)]) for k in keys}
        return Row(torch.cat([self.ids, other.ids]), tokens)


def _get(row: Row, key: str) -> torch.Tensor:
    # a per-token input missing from a text-only part is all zeros (token type 0 = text)
    return row.tokens.get(key, torch.zeros_like(row.ids))


def token_keys(batch: Mapping[str, torch.Tensor]) -> list[str]:
    """Processor outputs laid out per token (``token_type_ids``, ``mm_token_type_ids`` ...)."""
    shape = batch["input_ids"].shape
    return [
        k
        for k, v in batch.items()
        if k not in KEYS and isinstance(v, torch.Tensor) and v.shape == shape
    ]


def image_inputs(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Everything of a processor output that is not per token: pixels and per-image inputs."""
    per_token = set(token_keys(batch)) | set(KEYS)
    return {k: v for k, v in batch.items() if k not in per_token}


def rows_of(batch: Mapping[str, torch.Tensor]) -> list[Row]:
    """The rows of a right-padded processor output, padding removed."""
    keys = token_keys(batch)
    mask = batch["attention_mask"]
    lengths = mask.sum(dim=1).tolist()
    if any(not mask[b, :n].all() for b, n in enumerate(lengths)):
        raise ValueError("expected right-padded rows (padding_side='right')")
    return [
        Row(batch["input_ids"][b, :n], {k: batch[k][b, :n] for k in keys})
        for b, n in enumerate(lengths)
    ]


def right_pad(seqs: Sequence[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, W)`` ids right-padded with ``pad_id`` and their attention mask."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for j, seq in enumerate(seqs):
        ids[j, : len(seq)] = seq
        mask[j, : len(seq)] = 1
    return ids, mask


def pad_rows(rows: list[Row], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad rows into ``input_ids``, ``attention_mask`` and per-token tensors ``(B, W)``."""
    width = max(len(r) for r in rows)
    ids, mask = right_pad([r.ids for r in rows], pad_id)
    out = {"input_ids": ids, "attention_mask": mask}
    for key in sorted({k for r in rows for k in r.tokens}):
        dtype = next(r.tokens[key].dtype for r in rows if key in r.tokens)
        out[key] = torch.zeros((len(rows), width), dtype=dtype)
    for j, row in enumerate(rows):
        for key in out.keys() - set(KEYS):
            out[key][j, : len(row)] = _get(row, key)
    return out
