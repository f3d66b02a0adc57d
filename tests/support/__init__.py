"""Helpers and fixtures shared by the unit, integration and e2e tests: real-server
fixtures, raw HTTP devices, SDK clients, age issuers and the in-memory relay."""
