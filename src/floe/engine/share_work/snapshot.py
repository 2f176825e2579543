"""What a pass over one share reads first: the share, its rules and its attachments, as values.

Backend calls run outside any transaction, so steps work on this snapshot and every write
is a compare-and-swap on the state the snapshot saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from floe.db.models import Cluster, Node, Share
from floe.db.session import Database
from floe.storage.base import GIB, ShareRef

WAIT_DELAY = 1.0


@dataclass(frozen=True)
class RuleSnap:
    id: int
    uuid: str
    access_type: str
    access_to: str
    access_level: str
    state: str


@dataclass(frozen=True)
class AttachmentSnap:
    id: int
    mount_name: str
    read_only: bool
    state: str
    nodes_verified: tuple[str, ...]
    cluster_id: int
    cluster_name: str
    cluster_uuid: str
    cluster_tag: str
    cluster_status: str
    node_names: tuple[str, ...]


@dataclass(frozen=True)
class ShareSnap:
    id: int
    uuid: str
    name: str | None
    share_type: str
    size: int
    target_size: int | None
    status: str
    work_seq: int
    attempts: int
    backend_state: dict
    rules: tuple[RuleSnap, ...] = ()
    attachments: tuple[AttachmentSnap, ...] = ()
    project_id: str = ""

    def ref(self, size: int | None = None) -> ShareRef:
        return ShareRef(id=self.uuid, size_bytes=(size or self.size) * GIB, state=dict(self.backend_state))

    @property
    def label(self) -> str:
        return self.name or self.uuid


@dataclass
class Outcome:
    """What working a share left: more to do later, and how soon."""

    pending: bool = False
    delay: float = WAIT_DELAY
    notes: list[str] = field(default_factory=list)


def load(db: Database, share_id: int) -> ShareSnap | None:
    with db.session() as s:
        share = s.get(Share, share_id)
        if share is None:
            return None
        rules = tuple(RuleSnap(r.id, r.uuid, r.access_type, r.access_to, r.access_level, r.state)
                      for r in share.access_rules)
        atts = []
        for a in share.attachments:
            c = s.get(Cluster, a.cluster_id)
            if c is None:
                continue
            nodes = tuple(n for n, in s.execute(
                select(Node.name).where(Node.cluster_id == c.id, Node.state != "planned").order_by(Node.id)))
            atts.append(AttachmentSnap(
                a.id, a.mount_name, a.read_only, a.state, tuple(a.nodes_verified or ()), c.id, c.name, c.uuid,
                c.host_tag, c.status, nodes,
            ))
        return ShareSnap(
            share.id, share.uuid, share.name, share.share_type, share.size, share.target_size, share.status,
            share.work_seq, share.attempts, dict(share.backend_state or {}), rules, tuple(atts), share.project_id,
        )
