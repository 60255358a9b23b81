"""Pairing: a member and a new device agree on a short code and hand over the vault's trust."""
