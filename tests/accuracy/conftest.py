"""The accuracy suite's services carry their own tests; only test_accuracy.py runs them."""

from __future__ import annotations

collect_ignore = ["services"]
