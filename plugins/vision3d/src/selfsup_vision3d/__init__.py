"""selfsup-vision3d: self-supervised learning on 3D point clouds (a selfsup plugin)."""
