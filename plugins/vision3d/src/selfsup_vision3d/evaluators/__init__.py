"""The field's evaluations on frozen point-cloud embeddings."""
