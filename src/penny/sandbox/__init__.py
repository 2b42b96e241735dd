"""The sandbox: a shared clock that can be moved forward, and demo data."""
