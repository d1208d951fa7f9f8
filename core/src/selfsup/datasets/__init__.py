"""Core's own built-in dataset, so selfsup runs and is tested without any plugin."""
