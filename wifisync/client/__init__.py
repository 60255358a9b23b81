"""The CLI's side of other processes: the control socket, the agent, joining and pairing."""
