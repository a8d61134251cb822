"""`--region` specs of the CLIs to the job's `regions` mapping, and the ones they refuse."""

from __future__ import annotations

import pytest

from impasto.cli.region_options import parse_region, parse_regions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("#ff0000=0", ("#ff0000", {"0": 1.0})),
        ("#FF0000=1", ("#ff0000", {"1": 1.0})),
        ("#00ff00=", ("#00ff00", {})),
        ("#0000ff=0:0.7,1:0.3", ("#0000ff", {"0": 0.7, "1": 0.3})),
        (" #0000ff = 2 ", ("#0000ff", {"2": 1.0})),
    ],
)
def test_region_specs_parse(text: str, expected: tuple[str, dict[str, float]]) -> None:
    """A style index (weight 1), a blend, or nothing (content only); colours lower-cased."""
    assert parse_region(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("red=0", "expected #rrggbb"), ("#ff0000", "expected #rrggbb"), ("#ff0000=a", "not a style index"),
     ("#ff0000=0:x", "not a number"), ("#ff00=0", "expected #rrggbb")],
)  # fmt: skip
def test_bad_region_specs_are_refused(text: str, message: str) -> None:
    """A spec that is not #rrggbb=STYLE[:W],... says what it expected."""
    with pytest.raises(ValueError, match=message):
        parse_region(text)


def test_regions_collect_and_refuse_a_colour_twice() -> None:
    """Several --region make one mapping; none is None; the same colour twice is an error."""
    assert parse_regions(("#ff0000=0", "#0000ff=")) == {"#ff0000": {"0": 1.0}, "#0000ff": {}}
    assert parse_regions(()) is None
    with pytest.raises(ValueError, match="given twice"):
        parse_regions(("#ff0000=0", "#FF0000=1"))
