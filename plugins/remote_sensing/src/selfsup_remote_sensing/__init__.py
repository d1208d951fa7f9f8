"""selfsup-remote-sensing: self-supervised SAR despeckling (see README.md)."""
