"""Files in and out of the list: imports and exports."""
