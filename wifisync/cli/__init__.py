"""The ``wifisync`` command line."""
