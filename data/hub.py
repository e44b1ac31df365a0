"""Where a name points: a path on this machine or a Hugging Face Hub repository, and whether the
hub can answer now. Loaders retry for minutes when the hub cannot be reached; these answer in
seconds, so a mistyped folder or an offline machine is one clear line.
"""

from __future__ import annotations

import os
from pathlib import Path


def looks_local(name: str) -> bool:
    """Whether ``name`` is meant as a path on this machine rather than a hub id.

    A path starts with ``.``, ``/`` or ``~``, ends in ``.parquet`` or ``.arrow``, has more than one
    ``/`` or a backslash, or has a first component (``demo_out`` in ``demo_out/synthetic``) that
    exists here; a hub id (``owner/name``) has none of these.
    """
    if name.startswith((".", "/", "~")) or name.endswith((".parquet", ".arrow")):
        return True
    if name.count("/") > 1 or "\\" in name:
        return True
    parts = Path(name).parts
    return len(parts) > 1 and os.path.exists(parts[0])


def hub_reachable(timeout: float = 3.0) -> bool:
    """One short request to the hub endpoint, no retries: False offline or without a network."""
    import huggingface_hub
    from huggingface_hub import constants

    if huggingface_hub.is_offline_mode():
        return False
    try:
        huggingface_hub.get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception:  # DNS, connection refused, timeout, proxy: all mean "not now"
        return False
    return True


def probe_hub(repo_id: str, repo_type: str = "dataset", revision: str | None = None) -> str | None:
    """One quick metadata request (no retries) to learn whether the hub can serve ``repo_id``.

    ``load_dataset`` and ``from_pretrained`` retry for minutes when the hub cannot be reached; this
    answers in seconds. Returns ``None`` when the hub knows the repository (or answers in a way
    best left to the loader: gated, rate limited, unknown revision), ``"missing"`` when it has no
    such repository or the id is malformed, else the connection error's class name.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        HfApi().repo_info(repo_id, repo_type=repo_type, revision=revision, timeout=10)
    except GatedRepoError:
        return None
    except (RepositoryNotFoundError, ValueError):  # ValueError: not a valid repository id
        return "missing"
    except HfHubHTTPError:
        return None
    except Exception as err:  # a connection error or timeout: its class depends on the HTTP stack
        return type(err).__name__
    return None
