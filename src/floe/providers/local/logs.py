"""Where a local node's daemons log (the `ProviderWithNodeLogs` capability).

- dockerd: `dockerd.log` in the node's directory (with what the node's script, TLS proxy and
  journald print);
- journald: the node's journal (journal.py), which holds what containers log with the journald
  driver;
- policy: the node policy's plugin (`policy.log`, restricted nodes);
- a COE's node daemons (daemons.py): `daemons/<name>.log`, their output, unless the daemon keeps
  its own log in the cluster's files directory as `log/<name>-<node>.log` (slurmd);
- the cluster's host daemons (munged): `<name>.log` in the cluster's files directory, the same
  file listed on every node.
"""

from __future__ import annotations

from pathlib import Path

from floe.providers.base import NodeLog
from floe.providers.local import daemons, journal
from floe.providers.local.node import NodePaths


def node_logs(paths: NodePaths, cluster_files: Path) -> list[NodeLog]:
    """The logs of the node whose files are `paths` (dockerd's first); [] if it has no directory."""
    if not paths.dir.is_dir():
        return []
    found: dict[str, NodeLog] = {"dockerd": NodeLog("dockerd", paths.log)}
    if journal.has_journal(paths.dir):
        found["journald"] = NodeLog("journald", journal.journal_dir(paths.dir), journal=True)
    if paths.policy_log.is_file():
        found["policy"] = NodeLog("policy", paths.policy_log)
    for output in sorted((paths.dir / "daemons").glob("*.log")):
        name = output.stem
        if not daemons.DAEMON_NAME.match(name) or name in found:
            continue
        own = cluster_files / "log" / f"{name}-{paths.node}.log"
        found[name] = NodeLog(name, own if own.is_file() else output)
    for output in sorted(cluster_files.glob("*.log")):
        if daemons.DAEMON_NAME.match(output.stem) and output.stem not in found:
            found[output.stem] = NodeLog(output.stem, output)
    return list(found.values())
