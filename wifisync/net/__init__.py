"""Transport pieces shared by the daemon and the CLI: TLS contexts and addresses."""
