"""Bringing items in from other password managers, taking them out, and encrypted backups."""
