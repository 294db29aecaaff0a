"""Replaying a recorded drive through a live node: the bag's frames (and camera_info) go out over DDS, the
node's outputs are recorded to a new bag, and the ledger tells which frame each output answers. A tool
around the node (`hypood replay`, the demo, the tests), not part of it."""
