"""Examples that ship with pytest-runtime (the demo lives in ``examples.shop``)."""
