"""Core's own encoders for the ``vector`` modality."""
