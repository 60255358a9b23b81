"""What the daemon and the CLI share on the network: TLS, addresses, mDNS names and tags."""
