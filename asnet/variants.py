"""The model variants the pipeline trains, as data.

`context` is the first stream's input: "conventional" (multi-scale corner crop + flip in
training, centre crop at test) or a fixed box policy for the learnability probes.
`saliency` is the second stream's input (None for single-stream models).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    name: str
    streams: int
    context: str = "conventional"  # conventional | full | center | oracle
    saliency: str | None = None  # center | spa


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("single", 1),
        Variant("siamese_center", 2, saliency="center"),
        Variant("asnet", 2, saliency="spa"),
        # Learnability probes of the synthetic set (single stream, same box in training and test).
        Variant("probe_full", 1, context="full"),
        Variant("probe_center", 1, context="center"),
        Variant("probe_oracle", 1, context="oracle"),
    )
}

LABELS = {
    "single": "Single stream",
    "siamese_center": "Siamese, centre crop",
    "asnet": "ASNet (SPA)",
    "probe_full": "Full frame",
    "probe_center": "Centre crop",
    "probe_oracle": "Oracle crop (ground truth)",
}


def get_variant(name: str) -> Variant:
    """Look a variant up by name, with an error listing the known ones."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown variant {name!r}; choose one of: {', '.join(VARIANTS)}") from None
