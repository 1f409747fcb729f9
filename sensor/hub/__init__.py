"""The hub: the control plane sensors poll for probes and ship hits to (Starlette + uvicorn).

Run it with ``python -m sensor hub``; build the ASGI app with :func:`create_app`.
"""

from __future__ import annotations

from sensor.hub.app import create_app
from sensor.hub.core import Hub
from sensor.hub.server import serve
from sensor.hub.settings import HubSettings

__all__ = ["Hub", "HubSettings", "create_app", "serve"]
