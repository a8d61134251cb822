"""The callback interface through which a caller watches and stops a run."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from PIL import Image


@dataclass(frozen=True)
class Losses:
    """The weighted terms of the objective at one iteration (total = content + style + tv)."""

    content: float
    style: float
    tv: float
    total: float

    def as_dict(self) -> dict[str, float]:
        """The losses as a plain dict, e.g. for JSON."""
        return asdict(self)


class Callbacks:
    """Hooks the optimisation loop calls; subclass and override what you need."""

    def on_progress(self, iteration: int, losses: Losses) -> None:
        """Called after every iteration with the losses at that iteration."""

    def on_snapshot(self, iteration: int, image: Image.Image) -> None:
        """Called every `snapshot_every` iterations with the image as it stands."""

    def should_stop(self) -> bool:
        """Checked before every iteration; True ends the run cleanly with the current image."""
        return False
