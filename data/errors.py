"""One line for a mistake the user can fix, a traceback for a bug.

Entry points catch the errors a user causes (a path or name that is not there, a value out of
range, a missing package: ``ValueError``, ``OSError``, ``ImportError``) and print
``PROG: error: <what, and what to do>`` with exit code 2. Anything else is a bug and keeps its
traceback. ``--debug`` on any command line, or ``SEMCLIP_DEBUG=1``, prints the traceback of a
user error too.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

DEBUG_ENV = "SEMCLIP_DEBUG"
USER_ERRORS = (ValueError, OSError, ImportError)


def take_debug_flag(argv: Sequence[str] | None) -> list[str]:
    """``argv`` (default: ``sys.argv[1:]``) without ``--debug``; the flag turns debugging on."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in args:
        os.environ[DEBUG_ENV] = "1"
        args = [a for a in args if a != "--debug"]
    return args


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip() not in ("", "0", "false", "no")


def user_error(prog: str, err: BaseException, hint: str = "") -> int:
    """Print ``err`` as one line (its first line, then ``hint``) and return the exit code 2;
    with debugging on, its traceback first."""
    if debugging():
        traceback.print_exception(err)
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    print(f"{prog}: error: {first}{hint}", file=sys.stderr)
    return 2
