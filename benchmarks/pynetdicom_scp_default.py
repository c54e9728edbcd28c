"""tests/peers/pynetdicom_scp.py with pynetdicom's own DUL polling interval (1 ms).

The test peers shorten the SCP's DUL polling sleep to 0.1 ms (their ``_fast_dul`` handler) so
that tests run faster; every server-side association then polls its socket 10,000 times a
second, which on a 2-core machine running hundreds of associations takes the CPU the client
being measured needs. A pynetdicom-based server in production runs with the default, so the
benchmarks do too. Same command line as the original:

    python -m benchmarks.pynetdicom_scp_default --config peers.json --watch-stdin
"""
from __future__ import annotations

from tests.peers import pynetdicom_scp


def _default_dul(event) -> None:
    """EVT_CONN_OPEN handler that leaves pynetdicom's defaults alone."""


pynetdicom_scp._fast_dul = _default_dul  # looked up by make_peer() when it binds the handlers

if __name__ == "__main__":
    pynetdicom_scp.main()
