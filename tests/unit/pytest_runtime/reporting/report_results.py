"""Real probe results (from the comparison, not hand-made) for the report tests."""

from __future__ import annotations

from typing import Any

from pytest_runtime.compare import CompareSettings, ProbeResult, compare


def _hit(i: int, caps: dict[str, Any], ok: bool = True) -> dict[str, Any]:
    return {
        "probe_id": "p",
        "signature": "sig",
        "kind": "snapshot",
        "location": "shop.pricing:apply_discount",
        "ts": 1.0e9 + i,
        "hit_id": f"h-{i:04d}",
        "captures": caps,
        "expect": {"ok": ok},
        "source": {"id": "web-1", "service": "shop"},
    }


def _state(
    i: int, *, discount: Any = "d", currency: str = "EUR", note: str = "ok"
) -> dict[str, Any]:
    disc = {"@t": "dict", "v": {"rate": 5}} if discount == "d" else discount
    return {
        "order": {"@t": "dict", "v": {"id": i, "currency": currency, "discount": disc}},
        "note": note,
    }


def make_results(strict: bool = False) -> list[ProbeResult]:
    tests = [_hit(i, _state(i, currency=["EUR", "USD"][i % 2])) for i in range(10)]
    clean = [_hit(i, _state(i + 100, currency=["EUR", "USD"][i % 2])) for i in range(50)]
    odd = [
        _hit(
            i,
            _state(
                i + 100,
                discount=None if i % 5 == 0 else "d",
                currency="JPY" if i % 7 == 0 else "EUR",
                note="line1\nline2 100% :,",
            ),
            ok=i != 13,
        )
        for i in range(50)
    ]
    settings = CompareSettings(strict=strict)
    out = []
    for n, (name, prod) in enumerate(
        [("test_clean", clean), ("test_odd", odd), ("test_few", clean[:2])]
    ):
        for location in ("shop.pricing:apply_discount", "shop.pricing:total"):
            if name == "test_odd" and location.endswith("total"):
                prod = [dict(h, expect={"ok": True}) for h in odd]
            verdict = compare(tests, prod, settings=settings)
            out.append(
                ProbeResult(
                    nodeid=f"tests/test_shop.py::{name}",
                    test_file="tests/test_shop.py",
                    test_line=10 + n * 10,
                    location=location,
                    signature=f"sig{n}",
                    verdict=verdict,
                )
            )
    return out
