"""Started by ``python -m sensor run``: chain any other sitecustomize, then start the sensor."""

from __future__ import annotations

import importlib
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _same(path: str) -> bool:
    try:
        return os.path.abspath(path or os.curdir) == _HERE
    except (TypeError, ValueError):
        return False


def _chain() -> None:
    """Import the sitecustomize this directory shadowed (a virtualenv's or a distro's)."""
    ours = sys.modules.pop("sitecustomize", None)
    # Off sys.path for good: the application should not see the bootstrap directory.
    sys.path[:] = [p for p in sys.path if not _same(p)]
    try:
        importlib.import_module("sitecustomize")
    except ImportError as exc:
        if exc.name != "sitecustomize":
            sys.stderr.write(f"sensor: the chained sitecustomize failed: {exc}\n")
    except Exception as exc:
        sys.stderr.write(f"sensor: the chained sitecustomize failed: {exc}\n")
    finally:
        if ours is not None:
            sys.modules["sitecustomize"] = ours


# Python processes that multiprocessing starts for itself and that never run application code:
# as sources they would only sit "pending" for every probe. (Not the forkserver: workers are
# forked from it, and inherit the sensor from it.)
_HELPER_COMMANDS = ("from multiprocessing.resource_tracker import",)


def _is_helper() -> bool:
    argv = getattr(sys, "orig_argv", None) or []
    return any(isinstance(arg, str) and arg.startswith(_HELPER_COMMANDS) for arg in argv)


def _start() -> None:
    if _is_helper():
        return
    try:
        import sensor
    except ImportError:
        # A command run by another interpreter: the sensor is stdlib-only, so its source works.
        sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(_HERE))))
        import sensor
    try:
        sensor.start()
    except Exception as exc:
        # Never stop the program: a sensor that cannot start says so once and stays out.
        sys.stderr.write(f"sensor: not started: {exc}\n")


_chain()
_start()
