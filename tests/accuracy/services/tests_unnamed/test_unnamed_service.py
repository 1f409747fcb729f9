"""Misconfigured as users do it: no service named while the hub serves two services.

Run on its own by the accuracy suite (not part of ``testpaths``).
"""

from __future__ import annotations

import pytest
from acc_ledger import ledger


@pytest.mark.runtime_probe("acc_ledger.ledger:label_item", capture=["title"], rate=5)
def test_probe_without_a_service() -> None:
    assert ledger.label_item("red gadget") == "Red Gadget"
