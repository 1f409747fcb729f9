"""pytest-runtime: marked pytest assertions that also run as live production probes."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_runtime.compare import ProbeResult
    from pytest_runtime.errors import (
        EvidenceError,
        EvidenceFormatError,
        ExpectationViolation,
        HubAuthError,
        HubClientError,
        HubRequestError,
        HubUnreachableError,
        MarkerError,
        OptionError,
        RuntimeProbeError,
    )
    from pytest_runtime.evidence import Evidence
    from pytest_runtime.fixtures import ProbeHandle, RuntimeFixture
    from pytest_runtime.markers import ProbeRequest, ProbeSettings
    from pytest_runtime.options import RuntimeOptions
    from sensor._version import __version__

__all__ = [
    "Evidence",
    "EvidenceError",
    "EvidenceFormatError",
    "ExpectationViolation",
    "HubAuthError",
    "HubClientError",
    "HubRequestError",
    "HubUnreachableError",
    "MarkerError",
    "OptionError",
    "ProbeHandle",
    "ProbeRequest",
    "ProbeResult",
    "ProbeSettings",
    "RuntimeFixture",
    "RuntimeOptions",
    "RuntimeProbeError",
    "__version__",
]

# Re-exports are resolved on first access (PEP 562): `import pytest_runtime.plugin`, which
# pytest does at every start-up, must not pay for modules a run may never use. Even
# __version__: importing `sensor` (its agent) costs about 20 ms, 2% of a pytest start-up.
_WHERE = {
    "__version__": "sensor._version",
    "Evidence": "evidence",
    "EvidenceError": "errors",
    "EvidenceFormatError": "errors",
    "ExpectationViolation": "errors",
    "HubAuthError": "errors",
    "HubClientError": "errors",
    "HubRequestError": "errors",
    "HubUnreachableError": "errors",
    "MarkerError": "errors",
    "OptionError": "errors",
    "ProbeHandle": "fixtures",
    "ProbeRequest": "markers",
    "ProbeResult": "compare",
    "ProbeSettings": "markers",
    "RuntimeFixture": "fixtures",
    "RuntimeOptions": "options",
    "RuntimeProbeError": "errors",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_runtime' has no attribute {name!r}")
    if "." not in module:
        module = f"pytest_runtime.{module}"
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
