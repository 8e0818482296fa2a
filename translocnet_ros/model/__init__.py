"""TransLocNet: LiDAR BEV and aerial encoders, bidirectional cross-attention, likelihood over (x, y, yaw)."""
