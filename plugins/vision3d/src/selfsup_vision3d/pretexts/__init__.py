"""Pretext tasks of the field, one file per paper."""
