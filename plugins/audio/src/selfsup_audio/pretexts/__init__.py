"""Pretext tasks of selfsup-audio, one file per paper."""
