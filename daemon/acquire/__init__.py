"""Acquiring assistants: downloads, archives, imports and exports."""
