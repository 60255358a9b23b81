"""The unlocked vault: the one author of this device's records, item reads and writes."""
