"""Imports through the API: ``jobs`` (uploads kept between analyze and import, imports
running in the background), ``commands`` (rows into list commands)."""
