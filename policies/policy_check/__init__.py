"""Runs the Kyverno and conftest policy gates over dist/."""
