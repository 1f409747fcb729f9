"""Python 3.13: a function whose ``__code__`` was swapped gets a version back, so calls specialise.

CPython 3.13 keys its call specialisations (``CALL_PY_EXACT_ARGS`` and the like) by the
function's ``func_version``. A function made by ``MAKE_FUNCTION`` gets its code's version;
assigning ``__code__`` sets it to 0 and nothing sets it again (3.12 hands out a new one on
demand, 3.13 does not). So after a backend swaps in rebuilt code, every call site of the
function stays a generic ``CALL``: about 94 instructions more per call (a third of an empty
call), paid on every call between samples, whatever the probe costs itself.

:func:`set_code` assigns the code and then writes the version ``MAKE_FUNCTION`` would have
given a function of that code: the state is the one of a function created with the rebuilt
code. The field is written with ``ctypes`` only where :data:`OFFSET` was found and checked at
import (CPython 3.13 with the GIL, 64-bit: see :func:`_find_offset`); anywhere else
:func:`set_code` is a plain assignment, correct and as slow as before.

``SENSOR_FUNC_VERSION=false`` turns the write off (an operator who will not have the sensor
write into CPython's objects with ``ctypes``): swapped functions then keep version 0, as after
any ``__code__`` assignment. It is read at each swap, so it applies to the probes placed after
it is set; ``sensor.start()`` refuses a value that is not a boolean, and a bad value met here
(the host, which must not raise) is logged once and counts as off.
"""

from __future__ import annotations

import logging
import os
import sys
import sysconfig
from types import CodeType, FunctionType
from typing import Any

__all__ = ["ENV", "OFFSET", "code_version", "enabled", "set_code"]

log = logging.getLogger("sensor")

#: The switch: ``false`` (``0``, ``no``, ``off``) and the version is never written.
ENV = "SENSOR_FUNC_VERSION"
_ON = frozenset({"1", "true", "yes", "on"})
_OFF = frozenset({"0", "false", "no", "off"})
_warned: list[str] = []  # the bad values already logged (once each)


def enabled() -> bool:
    """Whether ``SENSOR_FUNC_VERSION`` lets :func:`set_code` write the version (default yes)."""
    raw = os.environ.get(ENV)
    if raw is None:
        return True
    value = raw.strip().lower()
    if value in _ON:
        return True
    if value not in _OFF and raw not in _warned:
        _warned.append(raw)
        log.warning(
            "sensor: %s: got %r, expected one of 1, true, yes, on, 0, false, no, off; "
            "not writing function versions",
            ENV,
            raw,
        )
    return False


def _maker(code: CodeType) -> FunctionType:
    """A function whose call runs ``MAKE_FUNCTION`` on ``code`` and returns the new function."""
    from bytecode import Bytecode, Instr

    maker = Bytecode(
        [
            Instr("RESUME", 0),
            Instr("LOAD_CONST", code),
            Instr("MAKE_FUNCTION"),
            Instr("RETURN_VALUE"),
        ]
    ).to_code()
    return FunctionType(maker, {})


def _read(fn: object, offset: int) -> int:
    import ctypes

    return int(ctypes.c_uint32.from_address(id(fn) + offset).value)


def _vectorcall(fn: object, offset: int) -> int:
    """The ``vectorcall`` pointer, the field right before ``func_version``."""
    import ctypes

    return int(ctypes.c_void_p.from_address(id(fn) + offset - 8).value or 0)


def _find_offset() -> int | None:
    """Where ``func_version`` is in a function object, checked by its behaviour, or None.

    The layout of 3.13's ``PyFunctionObject`` puts the 32-bit ``func_version`` last, after
    the ``vectorcall`` pointer: 8 bytes before the end on a 64-bit build. The place is only
    trusted if what it holds behaves as the version does: two functions made by
    ``MAKE_FUNCTION`` from one code hold the same non-zero value, one of another code a
    different non-zero value, a function made by ``FunctionType`` (no version) 0, and
    assigning ``__code__`` turns it to 0 in that function only.
    """
    # (read into a name first: mypy would otherwise judge the rest unreachable on 3.11)
    python = tuple(sys.version_info[:2])
    if (
        sys.implementation.name != "cpython"
        or python != (3, 13)
        or sysconfig.get_config_var("Py_GIL_DISABLED")
        or sys.maxsize != 2**63 - 1
        or FunctionType.__basicsize__ != 144
    ):
        return None
    offset = FunctionType.__basicsize__ - 8
    try:

        def one() -> int:
            return 1

        def two() -> int:
            return 2

        first, second = _maker(one.__code__)(), _maker(one.__code__)()
        other = _maker(two.__code__)()
        plain = FunctionType(one.__code__, {})
        version = _read(first, offset)
        if not (
            version != 0
            and _read(second, offset) == version
            and _read(other, offset) not in (0, version)
            and _read(plain, offset) == 0
        ):
            return None
        first.__code__ = two.__code__
        if _read(first, offset) != 0 or _read(second, offset) != version:
            return None
        global _PLAIN_VECTORCALL
        _PLAIN_VECTORCALL = _vectorcall(second, offset)
        if not _PLAIN_VECTORCALL or _vectorcall(other, offset) != _PLAIN_VECTORCALL:
            return None
    except Exception:  # no bytecode package, no ctypes: the plain assignment
        return None
    return offset


#: The ``vectorcall`` of a plain function (set by :func:`_find_offset`). A function with another
#: one (set by an extension) keeps version 0: a specialised call would bypass its vectorcall.
_PLAIN_VECTORCALL = 0

#: The offset of ``func_version`` in a function object, or None where it is not written.
OFFSET = _find_offset()


def code_version(code: CodeType) -> int:
    """The version ``MAKE_FUNCTION`` gives a function of ``code`` (0: none, or not 3.13)."""
    if OFFSET is None or not enabled():
        return 0
    try:
        return _read(_maker(code)(), OFFSET)
    except Exception:
        return 0


def set_code(fn: Any, code: CodeType, version: int) -> None:
    """``fn.__code__ = code``, then (3.13) ``version``, from :func:`code_version` of ``code``.

    The version identifies the code, not the function (every function made from one code
    shares it), so a call site specialised for it runs whatever code the function holds: the
    interpreter reads the code at each call and checks its argument count and frame size.
    """
    fn.__code__ = code
    if (
        OFFSET is not None
        and version
        and enabled()
        and fn.__code__ is code
        and _vectorcall(fn, OFFSET) == _PLAIN_VECTORCALL
    ):
        import ctypes

        ctypes.c_uint32.from_address(id(fn) + OFFSET).value = version
