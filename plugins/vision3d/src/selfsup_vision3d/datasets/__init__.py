"""Datasets of point clouds: the procedural shapes (offline default) and your folders."""
