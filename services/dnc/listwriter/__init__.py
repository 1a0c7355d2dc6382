"""The list writer role."""
