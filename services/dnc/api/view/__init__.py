"""The API's list view."""
