"""The catalog and the exchange rates the shop prices with."""

from __future__ import annotations

from decimal import Decimal

#: sku -> (name, unit price in USD)
PRODUCTS: dict[str, tuple[str, Decimal]] = {
    "mug": ("Enamel mug", Decimal("14.00")),
    "tee": ("Organic T-shirt", Decimal("24.00")),
    "hoodie": ("Zip hoodie", Decimal("59.00")),
    "cap": ("Five-panel cap", Decimal("19.00")),
    "sticker": ("Vinyl sticker", Decimal("3.50")),
    "poster": ("Risograph poster", Decimal("18.00")),
}

#: units of each currency per USD
RATES: dict[str, Decimal] = {
    "USD": Decimal("1"),
    "EUR": Decimal("0.92"),
    "GBP": Decimal("0.79"),
    "JPY": Decimal("151"),
}

#: the smallest unit of each currency (JPY has no cents)
QUANTUM: dict[str, Decimal] = {
    "USD": Decimal("0.01"),
    "EUR": Decimal("0.01"),
    "GBP": Decimal("0.01"),
    "JPY": Decimal("1"),
}

#: coupons: code -> (kind, value). "percent" takes a share off; "fixed" takes an amount off,
#: given per currency because a flat 10 means very different things in USD and in JPY.
COUPONS: dict[str, tuple[str, dict[str, Decimal]]] = {
    "SPRING10": ("percent", {"*": Decimal("0.10")}),
    "VIP25": ("percent", {"*": Decimal("0.25")}),
    "WELCOME5": (
        "fixed",
        {"USD": Decimal("5"), "EUR": Decimal("5"), "GBP": Decimal("4"), "JPY": Decimal("2500")},
    ),
}
