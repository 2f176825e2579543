"""A node's journal: its own systemd-journald, so dockerd's `journald` log driver works in nodes.

The node script (node.py) starts it before dockerd, as a child of the node's pid 1 (restarted if
it dies, gone with the node). It runs in the node's mount namespace, whose /run is a private
tmpfs: its sockets are the node's own /run/systemd/journal/socket (where dockerd's log driver
sends) and its files go to /run/log/journal (Storage=volatile), which the node binds to
`journal/` in its directory: on disk, bounded, kept across a node's restart, removed with the
node, and read by dockerd (`docker logs`, `docker service logs`) and by floe (journalctl -D).
Its settings are a drop-in in the node's /run/systemd/journald.conf.d: the host's journald.conf
is left alone.
"""

from __future__ import annotations

from pathlib import Path

from floe.host import commands

# Debian's (and most distributions') place; usr-merged systems have both.
JOURNALD_PATHS = ("/lib/systemd/systemd-journald", "/usr/lib/systemd/systemd-journald")
# Bounds of one node's journal on disk: files rotate at MAX_FILE, the oldest go past MAX_USE.
MAX_USE = "64M"
MAX_FILE = "8M"
CONFIG = f"""# floe: the node's journal (see floe/providers/local/journal.py)
[Journal]
Storage=volatile
RuntimeMaxUse={MAX_USE}
RuntimeMaxFileSize={MAX_FILE}
# The kernel's log and audit records are the host's, not the node's.
ReadKMsg=no
Audit=no
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
"""


def journald_binary() -> str | None:
    """The host's systemd-journald, or None (nodes then have no journal)."""
    return next((p for p in JOURNALD_PATHS if Path(p).is_file()), None)


def journal_dir(node_dir: Path) -> Path:
    """Where a node's journal files are, on the host."""
    return node_dir / "journal"


def config_file(node_dir: Path) -> Path:
    return node_dir / "journald.conf"


def prepare(node_dir: Path) -> str | None:
    """Write the node's journald drop-in and make its journal directory; the journald to run, or None."""
    binary = journald_binary()
    if binary is None:
        return None
    journal_dir(node_dir).mkdir(mode=0o755, exist_ok=True)
    commands.write_file(config_file(node_dir), CONFIG)
    return binary


def has_journal(node_dir: Path) -> bool:
    """Whether the node was given a journal (nodes started before floe gave them one were not)."""
    return journal_dir(node_dir).is_dir()
