"""Covey's test suites."""

import os

# Client stores made by tests use a fast KDF (covey.client._store.TEST_FAST_KDF_ENV, read
# there only); child processes (covey chat, covey app) inherit it. Real devices never set it.
os.environ.setdefault("COVEY_TEST_FAST_KDF", "1")
