"""The gate role."""
