"""Datasets: the simulated despeckling set (offline default), your SLC files, real scenes."""
