"""Command-line region specs for spatial control: `--region '#ff0000=0'` to the job's `regions` mapping."""

from __future__ import annotations

import re

REGION_SPEC = re.compile(r"^(#[0-9a-fA-F]{6})\s*=(.*)$")


def parse_region(text: str) -> tuple[str, dict[str, float]]:
    """'#rrggbb=0' (style 0), '#rrggbb=0:0.7,1:0.3' (a blend) or '#rrggbb=' (content only) to (colour, styles)."""
    match = REGION_SPEC.match(text.strip())
    if match is None:
        raise ValueError(f"expected #rrggbb=STYLE[:WEIGHT][,STYLE[:WEIGHT]...] or #rrggbb= , got {text!r}")
    colour, body = match.group(1).lower(), match.group(2).strip()
    styles: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in body.split(","))):
        index, _, weight = part.partition(":")
        if not index.isdigit():
            raise ValueError(f"{text!r}: {index!r} is not a style index (0 is the first style)")
        try:
            styles[str(int(index))] = float(weight) if weight else 1.0
        except ValueError as exc:
            raise ValueError(f"{text!r}: {weight!r} is not a number") from exc
    return colour, styles


def parse_regions(texts: tuple[str, ...] | list[str]) -> dict[str, dict[str, float]] | None:
    """Every --region as the `regions` parameter; None when there are none. A colour given twice is refused."""
    regions: dict[str, dict[str, float]] = {}
    for text in texts:
        colour, styles = parse_region(text)
        if colour in regions:
            raise ValueError(f"region {colour} is given twice")
        regions[colour] = styles
    return regions or None
