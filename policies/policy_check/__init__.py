"""Runs the Kyverno and conftest policy gates over dist/ (`python -m policy_check --reports reports`)."""
