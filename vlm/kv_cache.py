"""The few things about transformers' KV caches that moved between versions, in one place."""

from __future__ import annotations

import copy
import inspect
from typing import Any

import torch


def cache_keyword(model: torch.nn.Module) -> str:
    """The forward's cache argument: ``cache`` in newer transformers 5.x, ``past_key_values``
    in older ones."""
    params = inspect.signature(type(model).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def output_cache(out: Any):
    """The cache a forward returned, under either name."""
    return getattr(out, "cache", None) or out.past_key_values


def select_cache_rows(cache, index: torch.Tensor):
    """A new cache whose batch rows are ``cache``'s rows at ``index`` (repeats allowed).

    The prefix cache serves the next chunk too, so it must not change: its layers are copied
    shallowly (selecting rows makes new tensors), never the whole cache deeply.
    """
    if hasattr(cache, "layers") and hasattr(cache, "batch_select_indices"):
        chosen = copy.copy(cache)
        chosen.layers = [copy.copy(layer) for layer in cache.layers]
    else:
        chosen = copy.deepcopy(cache)
    if hasattr(chosen, "batch_select_indices"):
        chosen.batch_select_indices(index.to(cache_device(cache)))
    else:
        chosen.reorder_cache(index)
    return chosen


def cache_device(cache) -> torch.device | str:
    """Where the cache's tensors live (``cpu`` for an empty one)."""
    layers = getattr(cache, "layers", None) or []
    keys = getattr(layers[0], "keys", None) if layers else None
    return keys.device if isinstance(keys, torch.Tensor) else "cpu"
