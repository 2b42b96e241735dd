"""What the stateful model tests share (tests/test_ledger_stateful.py,
tests/test_payments_stateful.py): the Hypothesis settings a machine runs under."""

from __future__ import annotations

from hypothesis import HealthCheck, settings


def machine_settings(max_examples: int) -> settings:
    """``max_examples`` runs of up to 30 steps, with no deadline (a step writes to a real
    store) and no complaint about slow or large draws."""
    return settings(
        max_examples=max_examples,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
