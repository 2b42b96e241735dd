"""Services: orchestration of the domain over the ledger engine and storage."""
