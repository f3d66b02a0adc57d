"""Alembic migrations for the relay's schema, applied with `upgrade head` at start-up."""
