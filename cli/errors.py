"""One line for a mistake the user can fix, a traceback for a bug.

Entry points catch the errors a user causes (a path or name that is not there, a value out of
range, a missing package: ``ValueError``, ``OSError``, ``ImportError``) and print
``PROG: error: <what, and what to do>`` with exit code 2. Anything else is a bug and keeps its
traceback. ``--debug`` on any command line, or ``SEMCLIP_DEBUG=1``, prints the traceback of a
user error too.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

DEBUG_ENV = "SEMCLIP_DEBUG"
USER_ERRORS = (ValueError, OSError, ImportError)


_flag = False  # --debug on the command line of the entry point now running


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line (no usage block), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def take_debug_flag(argv: Sequence[str] | None) -> list[str]:
    """``argv`` (default: ``sys.argv[1:]``) without ``--debug``; the flag turns debugging on for
    this command (each entry point calls this first, so one call does not leak into the next)."""
    global _flag
    args = list(sys.argv[1:] if argv is None else argv)
    _flag = "--debug" in args
    return [a for a in args if a != "--debug"]


def debugging() -> bool:
    """``--debug`` was given, or ``SEMCLIP_DEBUG`` is set to something other than 0/false/no."""
    return _flag or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0", "false", "no")


def user_error(prog: str, err: BaseException, hint: str = "") -> int:
    """Print ``err`` as one line (its first line, then ``hint``) and return the exit code 2;
    with debugging on, its traceback first."""
    if debugging():
        traceback.print_exception(err)
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    print(f"{prog}: error: {first}{hint}", file=sys.stderr)
    return 2


def check_device(device: str | None, flag: str = "--device") -> None:
    """A ``ValueError`` naming ``flag`` for a device this machine does not have (before any model
    is loaded; torch's own error is an assertion deep inside the load)."""
    if not device or device in ("cpu", "auto"):
        return
    import torch

    kind, _, index = device.partition(":")
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{flag} {device}: this machine has no CUDA device (use cpu)")
        if index and (not index.isdigit() or int(index) >= count):
            raise ValueError(f"{flag} {device}: this machine has CUDA devices 0..{count - 1}")
    elif kind == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"{flag} {device}: MPS is not available here (use cpu)")
    else:
        raise ValueError(f"{flag} {device}: not a device (cpu, cuda, cuda:1, mps)")
