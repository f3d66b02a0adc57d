"""`covey app`: this device's client serving its user interface to a browser on
127.0.0.1 only (docs/app.md). `run_app` starts it; `Gate` holds its local security rules."""

from covey.app._run import run_app
from covey.app._security import Gate, LaunchToken

__all__ = ["Gate", "LaunchToken", "run_app"]
