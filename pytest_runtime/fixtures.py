"""The ``runtime`` fixture: arm a probe from inside a test body, like the marker does."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from pytest_runtime.errors import ExpectationViolation
from pytest_runtime.markers import parse_probe_args

if TYPE_CHECKING:
    import pytest

    from pytest_runtime.markers import ProbeRequest
    from pytest_runtime.session import ArmedProbe, RuntimeSession

__all__ = ["ProbeHandle", "RuntimeFixture"]


class ProbeHandle:
    """One probe armed by ``runtime.probe()``; a context manager that checks on exit.

    Leaving the ``with`` block disarms the probe and raises :class:`ExpectationViolation` if a
    test-time hit broke ``expect``. Without ``with``, the probe stays armed until the test
    body ends and is checked then, like a marker's.
    """

    def __init__(self, session: RuntimeSession, armed: ArmedProbe) -> None:
        self._session = session
        self._armed = armed

    @property
    def request(self) -> ProbeRequest:
        return self._armed.request

    @property
    def location(self) -> str:
        return self._armed.request.location

    @property
    def signature(self) -> str:
        return self._armed.request.signature

    @property
    def hits(self) -> list[dict[str, Any]]:
        """The test-time hits so far, as Hit dicts (captures in the typed JSON encoding)."""
        return list(self._armed.hits)

    @property
    def captures(self) -> list[dict[str, Any]]:
        """The ``captures`` of each test-time hit so far."""
        return [dict(hit.get("captures") or {}) for hit in self._armed.hits]

    def check(self) -> None:
        """Disarm, then raise ExpectationViolation if any test-time hit broke ``expect``."""
        __tracebackhide__ = True
        message = self._session.check(self._armed)
        if message:
            raise ExpectationViolation(message)

    def close(self) -> None:
        """Disarm without checking (the end of the test still checks)."""
        self._session.disarm(self._armed)

    def __enter__(self) -> ProbeHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        if exc_type is None:
            self.check()
        else:
            self.close()  # the body's own exception says more; the end of the test reports ours

    def __repr__(self) -> str:
        return f"<ProbeHandle {self.location} hits={len(self._armed.hits)}>"


class RuntimeFixture:
    """The object the ``runtime`` fixture returns."""

    def __init__(self, session: RuntimeSession, item: pytest.Item) -> None:
        self._session = session
        self._item = item
        self._handles: list[ProbeHandle] = []

    def probe(self, location: str, **kwargs: Any) -> ProbeHandle:
        """Arm a probe now; takes the marker's arguments (``capture``, ``expect``, ...).

        The probe also joins the production comparison of this test, like a marker.
        Raises :class:`~pytest_runtime.errors.MarkerError` for an invalid argument.
        """
        request = parse_probe_args((location,), kwargs)
        armed = self._session.arm(self._item, request)
        handle = ProbeHandle(self._session, armed)
        self._handles.append(handle)
        return handle

    @property
    def probes(self) -> list[ProbeHandle]:
        return list(self._handles)

    @property
    def options(self) -> Any:
        """The run's resolved options (:class:`~pytest_runtime.options.RuntimeOptions`)."""
        return self._session.options
