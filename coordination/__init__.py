"""AXL coordination layer."""
