"""Fork and exit hooks: each forked worker becomes its own source; the last hits leave at exit.

Exit means interpreter exit (``atexit``) and, when nobody else handles it, SIGTERM: uvicorn
restores the previous SIGTERM handler after its graceful shutdown and raises the signal again,
which would end the process without running ``atexit``. Our handler flushes (bounded), then
restores the default action and raises the signal again, so the exit status stays the same.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from sensor import _atfork

if TYPE_CHECKING:
    from sensor.agent.lifecycle import Agent

__all__ = ["install_hooks"]

log = logging.getLogger("sensor.agent")

_getter: Callable[[], Agent | None] | None = None
_installed = False
_install_lock = threading.Lock()


def install_hooks(getter: Callable[[], Agent | None]) -> None:
    """Register the fork and atexit hooks once per process (they look the agent up each time)."""
    global _getter, _installed
    with _install_lock:
        _getter = getter
        first = not _installed
        _installed = True
    if first:
        # Gunicorn, uWSGI and multiprocessing fork after the sensor started in the parent: the
        # child has no agent thread, a copy of the parent's queue and the parent's source id.
        # The outer layer: the agent's lock is taken before the engine's, and its thread
        # restarts in the child only after the engine has new locks (see sensor._atfork).
        _atfork.register(
            _atfork.AGENT,
            before=_before_fork,
            after_in_parent=_after_in_parent,
            after_in_child=_after_in_child,
        )
        atexit.register(_at_exit)
    agent = _agent()
    if agent is not None and agent.config.sigterm_flush:
        _install_sigterm()


def _install_sigterm() -> None:
    # Only where nobody chose a SIGTERM behaviour: a handler the program set is never replaced.
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError, AttributeError) as exc:
        log.debug("sensor: no SIGTERM flush: %s", exc)


def _on_sigterm(signum: int, frame: object) -> None:
    try:
        _at_exit()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)


def _agent() -> Agent | None:
    getter = _getter
    return None if getter is None else getter()


def _before_fork() -> None:
    agent = _agent()
    if agent is not None:
        try:
            agent.before_fork()
        except Exception:
            log.debug("sensor: before-fork hook failed", exc_info=True)


def _after_in_parent() -> None:
    agent = _agent()
    if agent is not None:
        try:
            agent.after_fork_parent()
        except Exception:
            log.debug("sensor: after-fork (parent) hook failed", exc_info=True)


def _after_in_child() -> None:
    agent = _agent()
    if agent is not None:
        try:
            agent.after_fork_child()
        except Exception as exc:
            log.warning("sensor: could not restart in the forked child %d: %s", os.getpid(), exc)


def _at_exit() -> None:
    agent = _agent()
    if agent is not None and agent.running:
        try:
            agent.stop(agent.config.exit_timeout)
        except Exception as exc:
            log.warning("sensor: flush at exit failed: %s", exc)
