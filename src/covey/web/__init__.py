"""The moderation console: server-rendered pages (Jinja2) mounted under /console by
`covey.server.create_app`. No JavaScript; every POST carries the session's CSRF token."""

from covey.web.console import router

__all__ = ["router"]
