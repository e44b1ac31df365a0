"""Hand the picked visuals to the inner model without changing how it reads requests.

lmms-eval models fetch a request's document themselves (``self.task_dict[task][split][doc_id]``)
and call the request's ``doc_to_visual`` (simple models) or ``doc_to_messages`` (chat models) on
it, often the first request's function for a whole batch. So the wrapper gives the inner model a
view of the task dict whose staged documents carry their picked visuals or messages
(:class:`StagedDoc`), and swaps each request's function for one that reads them back: the same
function for every request, so batching by ``doc_to_visual[0]`` stays right.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

#: (task, split, doc_id): a request's document.
DocKey = tuple[str, str, int]


class StagedDoc(dict):
    """A task document (same columns) with what the inner model is to be shown."""

    def __init__(self, doc: Mapping[str, Any], visuals: list | None, messages: list | None):
        super().__init__(doc)
        self.visuals, self.messages = visuals, messages


def staged_visuals(doc: StagedDoc) -> list:
    """``doc_to_visual`` of a rewritten simple request."""
    return doc.visuals


def staged_messages(doc: StagedDoc) -> list:
    """``doc_to_messages`` of a rewritten chat request."""
    return doc.messages


class _Docs(Mapping):
    def __init__(self, docs, staged: dict[DocKey, StagedDoc], task: str, split: str) -> None:
        self.docs, self.staged, self.task, self.split = docs, staged, task, split

    def __getitem__(self, doc_id):
        staged = self.staged.get((self.task, self.split, doc_id))
        return staged if staged is not None else self.docs[doc_id]

    def __iter__(self) -> Iterator:
        return iter(range(len(self.docs)))

    def __len__(self) -> int:
        return len(self.docs)


class _Splits(Mapping):
    def __init__(self, splits, staged: dict[DocKey, StagedDoc], task: str) -> None:
        self.splits, self.staged, self.task = splits, staged, task

    def __getitem__(self, split):
        return _Docs(self.splits[split], self.staged, self.task, split)

    def __iter__(self) -> Iterator:
        return iter(self.splits)

    def __len__(self) -> int:
        return len(self.splits)


class StagedTasks(Mapping):
    """The wrapper's ``task_dict`` as the inner model sees it: staged documents first."""

    def __init__(self, tasks: Mapping) -> None:
        self.tasks = tasks
        self.staged: dict[DocKey, StagedDoc] = {}

    def __getitem__(self, task):
        return _Splits(self.tasks[task], self.staged, task)

    def __iter__(self) -> Iterator:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)


def with_function(request, position: int, function):
    """A shallow copy of an lmms-eval ``Instance`` whose argument at ``position`` is
    ``function`` (the evaluator keeps the original, with its own functions, for logging)."""
    twin = copy.copy(request)
    args = list(request.args)
    args[position] = function
    twin.arguments = tuple(args)
    return twin


def first_image_position(messages: list) -> tuple[int, int] | None:
    """(message, content) index of the first image in chat messages, or ``None``."""
    for m, message in enumerate(messages):
        for c, content in enumerate(message.get("content") or []):
            if isinstance(content, dict) and content.get("type") == "image":
                return m, c
    return None


def message_images(messages: list) -> list:
    """The first image of chat messages (as a one-item list), or ``[]``."""
    at = first_image_position(messages)
    return [] if at is None else [messages[at[0]]["content"][at[1]]["url"]]


def replace_first_image(messages: list, images: list) -> list:
    """A copy of chat messages whose first image item became one item per image, in order."""
    at = first_image_position(messages)
    if at is None:
        return messages
    out = copy.copy(messages)
    message = dict(out[at[0]])
    content = list(message["content"])
    item = content[at[1]]
    content[at[1] : at[1] + 1] = [{**item, "url": image} for image in images]
    message["content"] = content
    out[at[0]] = message
    return out
