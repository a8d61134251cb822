"""`impasto up` sizes its CPU worker's budget and its API's limit together (impasto/cli/embedded_memory.py)."""

from __future__ import annotations

from impasto.cli.embedded_memory import cpu_worker_memory
from impasto.shared.settings import get_settings
from impasto.shared.size_classes import pixels_for_cpu_budget

GIB = 1024**3
SETTINGS = get_settings(max_output_pixels=4096 * 4096)


def test_a_large_machine_gets_the_budget_the_largest_job_needs() -> None:
    """24 GiB: a 4096² job needs ~5.3 GB, under half the machine; the API keeps its 4096² limit."""
    added = cpu_worker_memory({}, SETTINGS, 24 * GIB)
    budget = int(added["IMPASTO_ENGINE_MEMORY_BUDGET_MB"])
    assert 5000 < budget < 12 * 1024
    assert pixels_for_cpu_budget(budget) >= 4096 * 4096 > pixels_for_cpu_budget(budget - 2)
    assert added["IMPASTO_MAX_OUTPUT_PIXELS"] == str(4096 * 4096)


def test_a_small_machine_lowers_the_apis_limit_to_what_its_worker_holds() -> None:
    """6 GiB: half is 3 GB, so the API refuses jobs over what 3 GB holds instead of queueing them for ever."""
    added = cpu_worker_memory({}, SETTINGS, 6 * GIB)
    assert added["IMPASTO_ENGINE_MEMORY_BUDGET_MB"] == "3072"
    assert int(added["IMPASTO_MAX_OUTPUT_PIXELS"]) == pixels_for_cpu_budget(3072) < 4096 * 4096


def test_what_the_user_set_is_kept() -> None:
    """A budget set by hand decides the limit; a limit set by hand is kept too (the user asked for it)."""
    added = cpu_worker_memory({"IMPASTO_ENGINE_MEMORY_BUDGET_MB": "2048"}, SETTINGS, 24 * GIB)
    assert added == {"IMPASTO_MAX_OUTPUT_PIXELS": str(pixels_for_cpu_budget(2048))}
    assert (
        cpu_worker_memory(
            {"IMPASTO_ENGINE_MEMORY_BUDGET_MB": "2048", "IMPASTO_MAX_OUTPUT_PIXELS": "99"}, SETTINGS, 24 * GIB
        )
        == {}
    )
