"""The entry point payload lmms-eval reads (group ``lmms_eval.models``, ``registry_v2``).

Both classes are registered: lmms-eval resolves ``semclip`` to the chat class unless
``--force_simple`` is given; either hands over to the class that matches the inner model, so
every lmms-eval model id can be wrapped. The payload is a function (lmms-eval calls it), so
this module imports nothing of lmms-eval's until lmms-eval itself asks: importing
``lmms_eval.models`` loads the entry points, and a module-level import of its registry from
here would be circular.
"""

from __future__ import annotations

_MODEL = "semclip.integrations.lmms_eval.model"


def manifest():
    """The ``semclip`` model's ``ModelManifest``."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(
        model_id="semclip",
        simple_class_path=f"{_MODEL}.SemClipSimple",
        chat_class_path=f"{_MODEL}.SemClipChat",
    )
