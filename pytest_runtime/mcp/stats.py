"""The rate of an outcome over n evaluations, with its 95% confidence bound.

One small function on purpose: the plugin's verdicts get their own confidence bound (the rule
of three: an event never seen in n trials is rarer than about 3/n at 95%), and this one is to be
swapped for it once both exist, so that agents and reports state the same numbers.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["CONFIDENCE", "rate_with_bound"]

CONFIDENCE = 0.95
_Z = 1.959963984540054  # two-sided 95% normal quantile


def rate_with_bound(count: int, n: int) -> dict[str, Any]:
    """``count`` of ``n`` as a rate with a 95% interval, and how the interval was computed.

    - ``count == 0``: the one-sided upper bound ``1 - 0.05 ** (1/n)`` (about ``3/n``, the rule
      of three): the outcome may still happen, but more rarely than that;
    - ``count == n``: the matching lower bound;
    - otherwise the Wilson score interval (good at small n and near 0 or 1).
    """
    if isinstance(count, bool) or isinstance(n, bool) or not 0 <= count <= n:
        raise ValueError(f"rate_with_bound: got count={count!r}, n={n!r}, expected 0 <= count <= n")
    if n == 0:
        return {"rate": None, "low": None, "high": None, "over": 0, "method": "no evaluations"}
    alpha = 1.0 - CONFIDENCE
    if count == 0:
        return {
            "rate": 0.0,
            "low": 0.0,
            "high": 1.0 - alpha ** (1.0 / n),
            "over": n,
            "method": "none seen: one-sided 95% upper bound, about 3/n (rule of three)",
        }
    if count == n:
        return {
            "rate": 1.0,
            "low": alpha ** (1.0 / n),
            "high": 1.0,
            "over": n,
            "method": "all seen: one-sided 95% lower bound (rule of three on the complement)",
        }
    p = count / n
    z2 = _Z * _Z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = _Z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return {
        "rate": p,
        "low": max(0.0, centre - half),
        "high": min(1.0, centre + half),
        "over": n,
        "method": "Wilson score interval, 95%",
    }
