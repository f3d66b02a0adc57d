"""HTTP and WebSocket layer: turns requests into service calls, nothing more."""

from covey.server.api import accounts, age, blobs, groups, guardians, keys, messages, safety, ws

ROUTERS = (accounts.router, keys.router, groups.router, messages.router, blobs.router,
           ws.router, age.router, safety.router, guardians.router)

__all__ = ["ROUTERS"]
