"""Covey: end-to-end encrypted messaging that keeps children safe.

The public API is a handful of names; see `covey.client.Client`,
`covey.server.create_app` and `covey.protocol`.
"""

__version__ = "0.1.0"
