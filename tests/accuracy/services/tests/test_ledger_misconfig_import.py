"""Misconfigured as users do it: a marker on a module this test process cannot import.

``acc_vendor_hooks`` is installed in the service's image only; the marker arms nothing here.
"""

from __future__ import annotations

import pytest


@pytest.mark.runtime_probe(
    "acc_vendor_hooks:normalize_sku", capture=["sku"], service="acc-ledger", rate=5
)
def test_marker_on_a_module_the_tests_cannot_import() -> None:
    assert " sku-001 ".strip().upper() == "SKU-001"
