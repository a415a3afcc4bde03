"""Helpers shared by the test suites (test origin server, ports)."""
