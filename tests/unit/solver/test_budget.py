"""A build's cooperative work budget: charged bytes and elapsed time stop the work at the bound,
waiting on others is not charged, and code run without a budget pays nothing."""
from __future__ import annotations

import time

import pytest

from pybuildkit.solver.budget import Budget, BudgetExceededError, active, checkpoint


def test_no_budget_means_checkpoints_do_nothing() -> None:
    checkpoint(1 << 40)


def test_bytes_over_the_memory_budget_raise_naming_the_budget_and_its_key() -> None:
    budget = Budget(60, 100, what="the frontend", memory_key="[frontend] memory-budget")
    with active(budget), pytest.raises(BudgetExceededError) as caught:
        checkpoint(60)
        checkpoint(60)
    assert caught.value.budget == "memory"
    assert "memory budget of 100 bytes" in caught.value.message
    assert "[frontend] memory-budget" in (caught.value.hint or "")


def test_work_past_the_deadline_raises_at_the_next_checkpoint() -> None:
    budget = Budget(0.05, 1 << 30, time_key="[frontend] time-budget")
    with active(budget):
        checkpoint()
        time.sleep(0.1)
        with pytest.raises(BudgetExceededError) as caught:
            checkpoint()
    assert caught.value.budget == "time" and "[frontend] time-budget" in (caught.value.hint or "")


def test_time_spent_waiting_on_others_moves_the_deadline() -> None:
    budget = Budget(0.05, 1 << 30)
    with active(budget):
        with budget.waiting():
            time.sleep(0.1)
        checkpoint()  # the 0.1 s were the registry's, not the Dockerfile's


def test_an_abandoned_budget_stops_the_work_at_once() -> None:
    budget = Budget(60, 1 << 30)
    budget.abandoned = True
    with active(budget), pytest.raises(BudgetExceededError):
        checkpoint()


def test_the_budget_is_per_context_and_restored_after() -> None:
    with active(Budget(60, 10)):
        with pytest.raises(BudgetExceededError):
            checkpoint(11)
    checkpoint(11)
