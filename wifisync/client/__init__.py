"""The CLI's side of other processes: control socket, agent, finding a pairing window, join."""
