"""selfsup-audio: audio datasets, features, encoders and pretext tasks for selfsup."""
