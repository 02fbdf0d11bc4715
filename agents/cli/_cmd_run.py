"""``axl run <role>``: placeholder until the market roles exist (filled in below)."""
