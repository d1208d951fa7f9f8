"""Despeckling metrics."""
