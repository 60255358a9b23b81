"""The unlock agent: a per-user process that holds the vault key for a while (DESIGN.md 7).

``wifisync unlock`` checks the master password, then hands the vault key (never the
password) to ``python -m wifisync.agent`` over a pipe. The agent answers commands of the
same user on a 0600 socket in the runtime directory until ``wifisync lock``, its timeout,
or the removal of its socket (logout clears the runtime directory). It is not the sync
daemon, which never holds the key.
"""
