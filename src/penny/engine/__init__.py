"""The engine: durable execution of ledger commands (``ledger``) and group commit (``group``)."""
