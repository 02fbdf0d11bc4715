"""AXL agents layer."""
