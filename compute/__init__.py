"""AXL compute layer."""
