"""iptables rules (filter table), each tagged with a floe comment so it can be found and removed.

iptables has no netlink library worth depending on here, so this runs the iptables
binary with argument lists and `-w` (wait for the xtables lock).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from floe.host import commands

Rule = tuple[str, list[str]]  # (chain, match and target arguments without the comment)


def _iptables(*args: str, check: bool = True):
    return commands.run([commands.binary("iptables"), "-w", *args], check=check)


def _spec(rule: Rule, comment: str) -> list[str]:
    chain, args = rule
    target = args.index("-j")
    return [chain, *args[:target], "-m", "comment", "--comment", comment, *args[target:]]


def exists(rule: Rule, comment: str) -> bool:
    """Whether the rule (with its comment) is in its chain."""
    return _iptables("-C", *_spec(rule, comment), check=False).returncode == 0


def ensure(rules: Sequence[Rule], comment: str, *, top: bool) -> bool:
    """Make `rules` present in this order, at the top of their chains or appended; True if changed.

    When all are present nothing is touched (one `-C` each). Otherwise the present
    ones are deleted and the whole block is added again, which keeps the order
    (ACCEPTs before DROPs) whatever state a crash left behind.
    """
    if all(exists(rule, comment) for rule in rules):
        return False
    for rule in rules:
        while _iptables("-D", *_spec(rule, comment), check=False).returncode == 0:
            pass
    if top:
        for rule in reversed(rules):
            spec = _spec(rule, comment)
            _iptables("-I", spec[0], "1", *spec[1:])
    else:
        for rule in rules:
            _iptables("-A", *_spec(rule, comment))
    return True


def remove(rules: Sequence[Rule], comment: str) -> list[str]:
    """Delete exactly these rules (with their comment), every copy; return the ones that were there."""
    removed: list[str] = []
    for rule in rules:
        while _iptables("-D", *_spec(rule, comment), check=False).returncode == 0:
            removed.append(shlex.join(_spec(rule, comment)))
    return removed


def listing() -> list[str]:
    """`iptables -S` of the filter table, one rule per line."""
    return _iptables("-S").stdout.splitlines()


def delete_tagged(comment: str, must_contain: Sequence[str] = ()) -> list[str]:
    """Delete every rule carrying exactly `comment` (and all of `must_contain`); return them."""
    removed: list[str] = []
    for line in listing():
        if not line.startswith("-A "):
            continue
        args = shlex.split(line)
        try:
            tagged = args[args.index("--comment") + 1] == comment
        except (ValueError, IndexError):
            continue
        if tagged and all(part in args for part in must_contain):
            if _iptables("-D", *args[1:], check=False).returncode == 0:
                removed.append(line)
    return removed
