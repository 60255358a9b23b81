"""The daemon: composition only. Listener, links, dialer, discovery, pairing and control."""
