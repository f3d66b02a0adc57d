"""The relay server: `create_app(settings)` returns its ASGI application."""

from covey.server.app import create_app

__all__ = ["create_app"]
