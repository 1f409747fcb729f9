"""The demo: a small shop service, its tests, a traffic generator and the demo runner."""
