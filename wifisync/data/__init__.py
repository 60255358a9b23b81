"""Data files shipped with the package: the EFF word list for generated passphrases."""
