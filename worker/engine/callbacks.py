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


class Interrupted(Exception):
    """Raised inside the engine when should_interrupt() says so; stylize() turns it into a stopped Result."""


class Callbacks:
    """Hooks the optimisation loop calls; subclass and override what you need."""

    def on_progress(self, iteration: int, losses: Losses) -> None:
        """Called after every iteration with the losses at that iteration."""

    def on_snapshot(self, iteration: int, image: Image.Image) -> None:
        """Called every `snapshot_every` iterations with the image as it stands."""

    def should_stop(self) -> bool:
        """Checked before every iteration; True ends the run cleanly with the current image."""
        return False

    def should_interrupt(self) -> bool:
        """Checked often where an iteration boundary is far: during set-up (between the network's layers
        while computing the targets) and before each evaluation inside an iteration (L-BFGS's line search
        makes up to 26). True ends the run as should_stop() does, with the image of the last completed
        iteration; the work in progress is dropped. Default: never, so only should_stop() ends a run.
        """
        return False

    def check_interrupt(self) -> None:
        """Raise Interrupted if should_interrupt() says so (the engine calls this at its checkpoints)."""
        if self.should_interrupt():
            raise Interrupted
