"""The paper's VLM-based psi: the VLM scores crops with its own representations, no training.

For a crop c and a question q (SemClip, arXiv 2503.11794, Sec. 3):

    psi(c, q) = cos( P(V(c))[CLS], LM(q)[last] )

``V`` is the VLM's vision tower at its feature layer (``vision_feature_layer``), ``P`` its
multimodal projector, taken at the [CLS] position (so it lives in the LLM's embedding space), and
``LM(q)[last]`` the language model's last-layer hidden state at the question's last token. The crop
is preprocessed as the VLM sees it (``VLM.view``: square-padded for LLaVA-1.5).

Supported for the families whose vision features keep a [CLS] position (the family registry's
``psi``: LLaVA-1.5); other families raise a ``ValueError`` saying so.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from semclip.inference.scorers import Query


class VLMPsiScorer:
    """``psi`` of every cell of each query (see the module docstring); ``(B, n*n)``."""

    grid = None

    def __init__(self, vlm, image_batch_size: int = 64) -> None:
        if not vlm.family.psi:
            from semclip.vlm.families import FAMILIES

            supported = [name for name, family in FAMILIES.items() if family.psi]
            raise ValueError(
                f"the vlm-psi scorer needs a vision tower with a [CLS] position (families "
                f"{supported}); {vlm.config.model} is {vlm.family.name!r}"
            )
        self.vlm = vlm
        self.image_batch_size = image_batch_size

    @torch.inference_mode()
    def crop_embeddings(self, crops: Sequence) -> torch.Tensor:
        """``(N, H)`` projected [CLS] features of the crops, in the LLM's hidden size."""
        vlm, out = self.vlm, []
        for start in range(0, len(crops), self.image_batch_size):
            views = [vlm.view(c) for c in crops[start : start + self.image_batch_size]]
            pixels = vlm.processor.image_processor(views, return_tensors="pt")["pixel_values"]
            pixels = pixels.to(vlm.device, vlm.dtype)
            features = vlm.model.model.get_image_features(
                pixel_values=pixels, vision_feature_select_strategy="full"
            ).pooler_output  # per image (T, H), [CLS] first
            out.append(torch.stack([f[0] for f in features]).float())
        return torch.cat(out)

    @torch.inference_mode()
    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """``(B, H)`` last-layer hidden state at each text's last token."""
        vlm = self.vlm
        tokens = vlm.tokenizer(list(texts), padding=True, return_tensors="pt")
        tokens = {k: v.to(vlm.device) for k, v in tokens.items()}
        hidden = vlm.model.model.language_model(**tokens).last_hidden_state  # (B, T, H)
        last = tokens["attention_mask"].sum(dim=1) - 1  # right padding
        return hidden[torch.arange(len(texts), device=vlm.device), last].float()

    def cell_scores(self, queries: Sequence[Query], grid: int) -> torch.Tensor:
        from semclip.data.grid import crop_grid

        crops = [cell.image for q in queries for cell in crop_grid(q.overview, grid)]
        image = torch.nn.functional.normalize(self.crop_embeddings(crops), dim=-1)
        text = torch.nn.functional.normalize(
            self.text_embeddings([q.question for q in queries]), dim=-1
        )
        image = image.view(len(queries), grid * grid, -1)
        return torch.einsum("bd,bcd->bc", text, image).cpu()
