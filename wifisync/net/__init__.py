"""Everything that touches the network: transport, discovery, the daemon's control socket."""
