"""Shared fixtures and helpers of the appliance tests (tests/test_appliance_*.py)."""
