"""Scenario lab."""
