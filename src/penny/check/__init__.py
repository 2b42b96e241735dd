"""``penny check``: correctness checks shipped as commands (the Jepsen-style bank test).

* :mod:`penny.check.servers` starts, kills and restarts ``penny serve`` processes (and the
  throwaway PostgreSQL cluster) for a run;
* :mod:`penny.check.client` is a small signed FPS client that retries with the same
  ``CallerReference``;
* :mod:`penny.check.bank` sets up the bank, runs the clients and the nemesis and records the
  history; :mod:`penny.check.verify` checks the history against the final state;
  :mod:`penny.check.plot` draws throughput and faults over time;
* :mod:`penny.check.faults` is the test-only fault injection (``PENNY_FAULTS``) that proves the
  checker catches a real bug.
"""
