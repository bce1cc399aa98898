"""The PSA: a connector interface (base), ConnectWise Manage behind it, the account's
encrypted connection, writebacks posted through the outbox, and notes read back."""
