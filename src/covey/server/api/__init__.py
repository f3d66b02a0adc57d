"""HTTP and WebSocket layer: turns requests into service calls, nothing more."""

from covey.server.api import accounts, age, blobs, groups, keys, messages, ws

ROUTERS = (accounts.router, keys.router, groups.router, messages.router, blobs.router,
           ws.router, age.router)

__all__ = ["ROUTERS"]
