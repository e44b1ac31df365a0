"""The selector: scores the n x n crops of (image, question) pairs and returns the top-k crops.

Load it from any scorer checkpoint (an exported semclip folder, a hub id, or a stock CLIP/SigLIP
for the zero-shot baseline); an exported scorer is used as it was trained (its saved text mode, and
its grid when ``select`` is given none). ``select`` crops with the data layer, encodes every crop
of the batch in batched passes, reuses the embeddings of texts it has seen, and runs without
gradients.

    selector = Selector.from_pretrained("exported/", device="cuda", dtype=torch.bfloat16)
    [selection] = selector.select([image], ["What color is the star?"], k=1, grid=2)
    selection.crops[0], selection.boxes[0], selection.scores  # best crop, its box, all n*n scores
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from semclip.data.grid import Box, check_grid, crop_grid
from semclip.data.images import load_image
from semclip.data.visualize import BAR, INK, PICK, RELEVANT, RIGHT, WRONG, draw_grid
from semclip.models.scorer import RelevanceScorer

#: The grid ``select`` uses for a scorer that was not trained for one (a stock CLIP/SigLIP).
DEFAULT_GRID = 2


@dataclass
class Selection:
    """The top-k crops of one (image, question) pair and every cell's score (row-major)."""

    indices: list[int]
    crops: list[Image.Image]
    boxes: list[Box]
    scores: list[float]
    grid: int


class Selector:
    """Thin inference wrapper around a :class:`RelevanceScorer`."""

    def __init__(
        self, scorer: RelevanceScorer, image_batch_size: int = 256, text_cache_size: int = 4096
    ) -> None:
        self.scorer = scorer.eval()
        self.image_batch_size = image_batch_size
        self.text_cache_size = text_cache_size
        self._text_cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        revision: str | None = None,
        text_mode: str | None = None,
        **kwargs,
    ) -> Selector:
        """A selector around ``RelevanceScorer.from_pretrained(name_or_path)``, on ``device`` in
        ``dtype``. ``text_mode`` None: the scorer's saved text mode (``question`` if none)."""
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        scorer = RelevanceScorer.from_pretrained(
            name_or_path, revision=revision, text_mode=text_mode
        )
        scorer.model.to(device=device, dtype=dtype)
        return cls(scorer, **kwargs)

    @property
    def grid(self) -> int:
        """The grid ``select`` uses by default: the scorer's own, else :data:`DEFAULT_GRID`."""
        return self.scorer.grid or DEFAULT_GRID

    @torch.no_grad()
    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """``(len(texts), D)`` normalised embeddings; texts seen before are not re-encoded."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._text_cache))
        if missing:
            tokens = self.scorer.tokenize(missing)
            embeddings = self.scorer.encode_text(tokens["input_ids"], tokens["attention_mask"])
            for text, emb in zip(missing, embeddings):
                self._text_cache[text] = emb
                if len(self._text_cache) > self.text_cache_size:
                    self._text_cache.popitem(last=False)
        for text in texts:
            self._text_cache.move_to_end(text)
        return torch.stack([self._text_cache[t] for t in texts])

    @torch.no_grad()
    def image_embeddings(self, crops: Sequence[Image.Image]) -> torch.Tensor:
        """``(len(crops), D)`` normalised embeddings, ``image_batch_size`` crops a forward."""
        out = []
        for start in range(0, len(crops), self.image_batch_size):
            pixels = self.scorer.pixel_values(crops[start : start + self.image_batch_size])
            out.append(self.scorer.encode_images(pixels))
        return torch.cat(out)

    @torch.no_grad()
    def cell_scores(
        self, images: Sequence[Image.Image], texts: Sequence[str], grid: int | None = None
    ) -> tuple[torch.Tensor, list[list]]:
        """``(B, n*n)`` fp32 scores of each text against its own image's cells, and the cells.

        ``grid`` None: :attr:`grid`."""
        if len(images) != len(texts):
            raise ValueError(f"{len(images)} images but {len(texts)} questions")
        grid = self.grid if grid is None else grid
        check_grid(grid)
        cells = [crop_grid(load_image(image, alpha=self.scorer.alpha), grid) for image in images]
        crops = [cell.image for image_cells in cells for cell in image_cells]
        image_emb = self.image_embeddings(crops).view(len(images), grid * grid, -1)
        text_emb = self.text_embeddings(list(texts))
        return self.scorer.cell_similarity(text_emb, image_emb).cpu(), cells

    def select(
        self,
        images: Sequence[Image.Image],
        questions: Sequence[str],
        k: int = 1,
        grid: int | None = None,
    ) -> list[Selection]:
        """The top-``k`` crops of each (image, question) pair, best first.

        ``grid`` None: the grid the scorer was trained for (:attr:`grid`)."""
        grid = self.grid if grid is None else grid
        check_grid(grid)
        if not 1 <= k <= grid * grid:
            raise ValueError(f"k must be in 1..{grid * grid} for a {grid}x{grid} grid, got {k}")
        scores, cells = self.cell_scores(images, questions, grid)
        selections = []
        for row, image_cells in zip(scores, cells):
            top = torch.topk(row, k).indices.tolist()
            selections.append(
                Selection(
                    indices=top,
                    crops=[image_cells[i].image for i in top],
                    boxes=[image_cells[i].box for i in top],
                    scores=row.tolist(),
                    grid=grid,
                )
            )
        return selections


def selection_picture(
    image: Image.Image,
    selection: Selection,
    question: str,
    width: int = 360,
    relevant: Sequence[int] | None = None,
    answer: str | None = None,
    legend: bool = False,
) -> Image.Image:
    """The image's cells set apart (pixels untouched), the pick framed in red, under each cell a bar
    and number: its share of the softmax over the cells' scores (fixed 0-100 % scale); the question
    underneath. With ``relevant`` (ground truth) those cells get a blue frame and a header says
    whether the pick is right or wrong; with ``answer`` (what the VLM said) the header gives it.
    ``legend`` adds a line per colour saying what it marks."""
    shares = torch.tensor(selection.scores).softmax(0).tolist()
    picked = ", ".join(f"#{i}" for i in selection.indices)
    header, color = f"pick {picked}", INK
    if answer is not None:
        header = f"answer: {answer}"
    if relevant is not None:
        right = any(i in relevant for i in selection.indices)
        wanted = ", ".join(f"#{i}" for i in relevant) or "none"
        header = f"{'RIGHT' if right else 'WRONG'}: picked {picked}, relevant {wanted}"
        color = RIGHT if right else WRONG
    keys = []
    if legend:
        keys.append((PICK, f"red: the crop(s) shown to the VLM ({picked})"))
        if relevant:
            keys.append((RELEVANT, "blue: the cell(s) the question is about"))
        keys.append((BAR, "bar: the cell's share of the scorer's softmax"))
    return draw_grid(
        load_image(image),
        selection.grid,
        shares=shares,
        chosen=selection.indices,
        relevant=relevant or (),
        caption=question,
        header=header,
        header_color=color,
        width=width,
        legend=keys,
    )
