"""Misconfigured as users do it: a capture name that does not exist at the location.

``reserve(stock, qty)`` has no local called ``quantity``.
"""

from __future__ import annotations

import pytest
from acc_ledger import ledger


@pytest.mark.runtime_probe(
    "acc_ledger.ledger:reserve", capture=["stock", "quantity"], service="acc-ledger", rate=5
)
def test_capture_name_that_does_not_exist() -> None:
    assert ledger.reserve(10, 3) == 7
