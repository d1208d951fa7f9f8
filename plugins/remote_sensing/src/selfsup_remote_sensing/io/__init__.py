"""Readers of SAR files (no training code)."""
