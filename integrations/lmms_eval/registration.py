"""The entry point payload lmms-eval reads (group ``lmms_eval.models``, ``registry_v2``).

Both classes are registered: lmms-eval resolves ``semclip`` to the chat class unless
``--force_simple`` is given; the chat class hands over to the simple one when the inner model
has no chat implementation, so every lmms-eval model id can be wrapped.
"""

from __future__ import annotations

from lmms_eval.models.registry_v2 import ModelManifest

_MODEL = "semclip.integrations.lmms_eval.model"

MANIFEST = ModelManifest(
    model_id="semclip",
    simple_class_path=f"{_MODEL}.SemClipSimple",
    chat_class_path=f"{_MODEL}.SemClipChat",
)
