"""Pretext tasks, one file per paper."""
