"""The ``semclip`` model for lmms-eval: any lmms-eval model, shown [overview, top-k crops].

``SemClipChat`` wraps chat models (requests carry ``doc_to_messages``: the first image item of
the messages becomes the overview and the crops), ``SemClipSimple`` simple ones (requests carry
``doc_to_visual``: the visual list becomes [overview, crops, other visuals]). The inner model
then renders and scores as it always does, so the task's own prompt, parsing and aggregation
apply unchanged; ``k=0`` hands the requests over untouched.

What was picked is appended to each request's arguments as ``{"semclip": {...}}`` once the
inner model has answered: in-process samples (``simple_evaluate(...)["samples"]``) show it in
their ``arguments``; the CLI's ``--log_samples`` files drop ``arguments``, so ``selections=DIR``
also writes it to ``DIR/<task>.jsonl`` (``records.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lmms_eval import utils
from lmms_eval.api.model import lmms

from semclip.integrations.lmms_eval.options import (
    inner_arg_string,
    load_picker,
    split_model_args,
)
from semclip.integrations.lmms_eval.records import SelectionLog
from semclip.integrations.lmms_eval.selection import CropPicker, Pick, Request
from semclip.integrations.lmms_eval.staging import (
    StagedDoc,
    StagedTasks,
    message_images,
    replace_first_image,
    staged_messages,
    staged_visuals,
    with_function,
)

#: Key of the record appended to each request's arguments.
RECORD_KEY = "semclip"


def key(request) -> tuple[str, str, int]:
    """(task, split, doc_id) of a request: its last three arguments in both formats."""
    *_, doc_id, task, split = request.args
    return task, split, doc_id


class _SemClip(lmms):
    """Shared by both request formats; see the module docstring."""

    #: Index of the request's visual function (``doc_to_visual`` / ``doc_to_messages``).
    function_at: int = 2

    def __init__(
        self,
        inner: lmms,
        picker: CropPicker | None,
        select_batch: int = 32,
        selections: str | None = None,
    ) -> None:
        super().__init__()
        self.inner, self.picker, self.select_batch = inner, picker, max(1, select_batch)
        self.log = SelectionLog(selections, inner.rank, inner.world_size) if selections else None
        self.staged = StagedTasks(self.task_dict)  # the evaluator fills task_dict in place
        inner.task_dict = self.staged

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None):
        """Build the inner model from the arguments SemClip does not own, then the picker.

        Returns the chat or the simple wrapper, whichever matches the inner model."""
        from lmms_eval.models import get_model

        options, inner_args = split_model_args(utils.simple_parse_args_string(arg_string))
        inner_cls = get_model(options.vlm, force_simple=cls.is_simple)
        wrapper = SemClipSimple if getattr(inner_cls, "is_simple", True) else SemClipChat
        inner = inner_cls.create_from_arg_string(inner_arg_string(inner_args), additional_config)
        device = (additional_config or {}).get("device")
        picker = load_picker(options, inner_args, device)
        return wrapper(inner, picker, options.select_batch, options.selections)

    def __getattr__(self, name: str):
        # what the evaluator asks of a model beyond the interface (accelerator, ...)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def rank(self) -> int:
        return self.inner.rank

    @property
    def world_size(self) -> int:
        return self.inner.world_size

    def request_for(self, request) -> tuple[Request, list | None]:
        """Selection's view of a request, and (chat) the messages it came with."""
        raise NotImplementedError

    def stage(self, request, pick: Pick, messages: list | None) -> None:
        """Put a pick where the inner model will read it (:class:`StagedDoc`)."""
        raise NotImplementedError

    #: The function that reads staged documents back, for the request format.
    reader: Callable = staticmethod(staged_visuals)

    def doc(self, request):
        task, split, doc_id = key(request)
        return self.task_dict[task][split][doc_id]

    def run(self, requests: Sequence, method: str) -> list:
        """``method`` of the inner model on the requests, ``select_batch`` at a time, with
        their picks staged; each request then records its pick."""
        if self.picker is None:
            return getattr(self.inner, method)(requests)
        out: list = []
        for start in range(0, len(requests), self.select_batch):
            chunk = list(requests[start : start + self.select_batch])
            views = [self.request_for(r) for r in chunk]
            picks = self.picker.pick([view for view, _ in views])
            for request, pick, (_, messages) in zip(chunk, picks, views):
                self.stage(request, pick, messages)
            twins = [with_function(r, self.function_at, self.reader) for r in chunk]
            try:
                out.extend(getattr(self.inner, method)(twins))
            finally:
                self.staged.staged.clear()
            if self.log is not None:
                self.log.write([(*key(r), p.record) for r, p in zip(chunk, picks)])
            for request, pick in zip(chunk, picks):
                request.arguments = (*request.args, {RECORD_KEY: pick.record})
        return out

    def generate_until(self, requests) -> list:
        return self.run(requests, "generate_until")

    def loglikelihood(self, requests) -> list:
        return self.run(requests, "loglikelihood")

    def generate_until_multi_round(self, requests) -> list:
        if self.picker is not None:
            raise NotImplementedError("semclip: multi-round generation runs with k=0 only")
        return self.inner.generate_until_multi_round(requests)

    def clean(self) -> None:
        self.inner.clean()
        super().clean()


class SemClipSimple(_SemClip):
    """Wraps a simple lmms-eval model: requests carry ``doc_to_visual``."""

    is_simple = True
    function_at = 2
    reader = staticmethod(staged_visuals)

    def request_for(self, request) -> tuple[Request, None]:
        doc = self.doc(request)
        visuals = request.args[2](doc) or []
        return Request(list(visuals), doc, str(request.args[0])), None

    def stage(self, request, pick: Pick, messages: list | None) -> None:
        self.staged.staged[key(request)] = StagedDoc(self.doc(request), pick.visuals, None)


class SemClipChat(_SemClip):
    """Wraps a chat lmms-eval model: requests carry ``doc_to_messages``."""

    is_simple = False
    function_at = 1
    reader = staticmethod(staged_messages)

    def request_for(self, request) -> tuple[Request, list]:
        doc = self.doc(request)
        messages = request.args[1](doc)
        return Request(message_images(messages), doc, str(request.args[0])), messages

    def stage(self, request, pick: Pick, messages: list | None) -> None:
        if "skipped" not in pick.record:
            messages = replace_first_image(messages, pick.visuals)
        self.staged.staged[key(request)] = StagedDoc(self.doc(request), None, messages)
