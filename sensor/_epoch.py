"""A token replaced whenever a mode or rule that the expectation lanes test inline changes.

A lane (see :mod:`sensor.hotpath`) runs only while the CPU budget meters with the cheap clock,
its probe's account sheds no load and the redaction rules are those its fused form was built
for. Testing the four on every firing cost about a tenth of an evaluation; instead, every place
that changes one of them (``CpuBudget.clock``, ``Account.rate``, the process's redactor or its
rules) calls :func:`bump` after the change, and a lane tests them again only when the token is
not the one it last saw them hold under. A lane that reads the new token sees the change (it
was made first); one that read the old token reads the new one at its next firing.
"""

from __future__ import annotations

__all__ = ["bump", "token"]


class _Token:
    __slots__ = ()


#: The current token: compared by identity (a lane holds the one it saw, so it is never reused).
token: object = _Token()


def bump() -> None:
    """A mode or rule the lanes test changed (call it after the change)."""
    global token
    token = _Token()
