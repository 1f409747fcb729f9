"""A declared exception: unknown coupon codes raise KeyError by design (``raises=``).

Alone in its file: a marker argument the plugin rejects is a collection error of its module.
"""

from __future__ import annotations

import pytest
from acc_ledger import ledger


@pytest.mark.runtime_probe(
    "acc_ledger.ledger:coupon_percent",
    capture=["code"],
    raises=KeyError,
    service="acc-ledger",
    rate=5,
)
def test_coupon_percent_declares_key_error() -> None:
    assert ledger.coupon_percent("SPRING10") == 10
    assert ledger.coupon_percent("VIP25") == 25
    assert ledger.coupon_percent("WELCOME5") == 5
