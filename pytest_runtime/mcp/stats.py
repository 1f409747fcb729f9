"""The rate of an outcome over n evaluations, with its 95% confidence bound.

The bounds at 0 and at n are the comparison's own rule of three
(:func:`pytest_runtime.compare.counters.unseen_bound`, the one every verdict prints), called,
not copied: agents and reports state the same number for the same counts.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

__all__ = ["CONFIDENCE", "rate_with_bound"]

#: The comparison's confidence level (``pytest_runtime.compare.counters.CONFIDENCE``), repeated
#: here only so that importing the MCP server does not import the comparison; a test checks
#: that the two agree.
CONFIDENCE = 0.95


def rate_with_bound(count: int, n: int) -> dict[str, Any]:
    """``count`` of ``n`` as a rate with a 95% interval, and how the interval was computed.

    - ``count == 0``: the one-sided upper bound ``1 - 0.05 ** (1/n)`` (about ``3/n``, the rule
      of three): the outcome may still happen, but more rarely than that;
    - ``count == n``: the matching lower bound;
    - otherwise the Wilson score interval (good at small n and near 0 or 1).
    """
    # Imported here: building the MCP server must not import the comparison package.
    from pytest_runtime.compare import counters

    if isinstance(count, bool) or isinstance(n, bool) or not 0 <= count <= n:
        raise ValueError(f"rate_with_bound: got count={count!r}, n={n!r}, expected 0 <= count <= n")
    if n == 0:
        return {"rate": None, "low": None, "high": None, "over": 0, "method": "no evaluations"}
    if count == 0:
        return {
            "rate": 0.0,
            "low": 0.0,
            "high": counters.unseen_bound(n, counters.CONFIDENCE),
            "over": n,
            "method": "none seen: one-sided 95% upper bound, about 3/n (rule of three)",
        }
    if count == n:
        return {
            "rate": 1.0,
            "low": 1.0 - counters.unseen_bound(n, counters.CONFIDENCE),
            "high": 1.0,
            "over": n,
            "method": "all seen: one-sided 95% lower bound (rule of three on the complement)",
        }
    # The Wilson interval between 0 and n, at the same level (two-sided: 1.96 at 95%).
    z = NormalDist().inv_cdf(0.5 + counters.CONFIDENCE / 2)
    p = count / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return {
        "rate": p,
        "low": max(0.0, centre - half),
        "high": min(1.0, centre + half),
        "over": n,
        "method": "Wilson score interval, 95%",
    }
