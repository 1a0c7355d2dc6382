"""Imports through the API."""
