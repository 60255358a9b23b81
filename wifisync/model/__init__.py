"""The data model, pure: records, versions, clock, items, keys, device IDs and membership."""
