"""A probe that stops collecting: at most 3 hits per source, 40 wanted.

Run on its own by the accuracy suite (not part of ``testpaths``): once every source has
disabled it (max hits), no more evidence can come, and the verdict must say why.
"""

from __future__ import annotations

import pytest
from acc_ledger import ledger


@pytest.mark.runtime_probe(
    "acc_ledger.ledger:gift_wrap@entry", capture=["style"], service="acc-ledger", max_hits=3
)
def test_probe_that_stops_collecting() -> None:
    assert ledger.gift_wrap("paper") == "wrapped in paper"
