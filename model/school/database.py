"""What the school's PostgreSQL stores (the register, ``attendance_pg``; the gallery of
record, ``gallery_sync``) share: how long to wait for the server, and a connection pool set
up the same way for both."""

from __future__ import annotations

import math

from psycopg_pool import ConnectionPool

#: Seconds to wait for a connection (pool or server) before calling the database away.
#: Raise it for a slow network; each wait can stall a check-in that long while the server
#: is away (the kiosk then works offline until ``offline_retry_s`` has passed).
CONNECT_TIMEOUT_S = 3.0


def open_pool(url: str, *, name: str, size: int,
              connect_timeout_s: float = CONNECT_TIMEOUT_S) -> ConnectionPool:
    """A pool of at most ``size`` connections to ``url``, opening in the background."""
    pool = ConnectionPool(
        url, min_size=1, max_size=max(1, int(size)), open=False,
        timeout=connect_timeout_s, name=name,
        # Give up reconnecting soon: the pool's backoff would otherwise wait up to minutes
        # after the server is back; the next use simply tries again.
        reconnect_timeout=2 * connect_timeout_s,
        kwargs={"connect_timeout": connect_seconds(connect_timeout_s)},
        # A connection the server dropped (a restart, a network cut) is found out and
        # replaced when it is lent, not when a query fails on it.
        check=ConnectionPool.check_connection)
    pool.open(wait=False)
    return pool


def connect_seconds(timeout_s: float) -> int:
    """libpq's ``connect_timeout`` (whole seconds, at least 1) for ``timeout_s``."""
    return max(1, math.ceil(timeout_s))
