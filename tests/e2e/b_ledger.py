"""Gateway B's own ledger, read by the SDK checks (openai_sdk_client.py, anthropic_sdk_client.py)
to prove which requests reached B and which did not."""
import sqlite3
import time


def rows(path):
    """Requests gateway B has answered (status 200), from its ledger at `path`."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute("SELECT COUNT(*) FROM ledger WHERE status = 200").fetchone()[0]
    finally:
        con.close()


def rows_reach(path, n, timeout=30.0):
    """B's row count once it reaches `n` (B writes its row after the answer, off the response
    path, so the client can see the answer first), or whatever it is after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while (count := rows(path)) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return count
