"""The audio plugin's own metrics."""
