"""How often seeded samples of a field are read as a category (the table in comparison.md).

For each field (a list of value weights) and sample size, 2,000 seeded samples are drawn and
judged by the rule before the sample-size and Chao1 conditions (at most 6 distinct values, 4
hits each on average) and by :func:`pytest_runtime.compare.values.is_categorical`. Deterministic:
``python tools/category_samples.py`` prints the same table every time.
"""

from __future__ import annotations

import random
from collections import Counter

from pytest_runtime.compare.values import is_categorical

SAMPLES = 2000
SIZES = (20, 24, 30, 40, 60, 100)
FIELDS = {
    "3 equally likely values (a status)": [1.0] * 3,
    "4 currencies, 50/20/15/15%": [10.0, 4.0, 3.0, 3.0],
    "6 equally likely values": [1.0] * 6,
    "7 equally likely values (free text)": [1.0] * 7,
    "6 common values and a 7th on 5%": [95 / 6] * 6 + [5.0],
    "20 values, Zipf 2 (62% on the first)": [1 / (i + 1) ** 2 for i in range(20)],
}


def before(counts: list[int]) -> bool:
    """The rule before the sample-size and Chao1 conditions."""
    return 0 < len(counts) <= 6 and sum(counts) >= 4 * len(counts)


def shares(weights: list[float], n: int) -> tuple[float, float]:
    old = new = 0
    for seed in range(SAMPLES):
        drawn = random.Random(f"{seed}:{n}").choices(range(len(weights)), weights, k=n)
        counts = list(Counter(drawn).values())
        old += before(counts)
        new += is_categorical(counts)
    return old / SAMPLES, new / SAMPLES


def main() -> None:
    print(f"share of {SAMPLES:,} seeded samples read as a category, before / now")
    print("| production values at the path | " + " | ".join(f"{n} hits" for n in SIZES) + " |")
    print("| --- " * (len(SIZES) + 1) + "|")
    for name, weights in FIELDS.items():
        cells = [shares(weights, n) for n in SIZES]
        print(f"| {name} | " + " | ".join(f"{o:.3g} / {c:.3g}" for o, c in cells) + " |")


if __name__ == "__main__":
    main()
