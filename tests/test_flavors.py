"""The flavor catalog in the database (services/flavors.py) on SQLite and PostgreSQL: the seeded
m1.* flavors by name and Nova's ids, lookups and checks, the default for what names none, the
spec's bounds, admin-only changes that refuse flavors in use."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from floe import flavors as constants
from floe.db.models import Cluster, ClusterTemplate, Flavor, NodeGroup, Project
from floe.db.session import Database
from floe.errors import Conflict, Forbidden, InvalidInput, NotFound
from floe.services import flavors
from floe.services.identity import Caller
from tests.engine.conftest import database_url  # noqa: F401 - the fixture: SQLite, and PostgreSQL when set

ADMIN = Caller(project_id="p-admin", user_id="admin", is_admin=True)
MEMBER = Caller(project_id="p-member", user_id="member")
SEEDED = [("1", "m1.tiny", 1, 512, 1), ("2", "m1.small", 1, 2048, 20), ("3", "m1.medium", 2, 4096, 40),
          ("4", "m1.large", 4, 8192, 80), ("5", "m1.xlarge", 8, 16384, 160)]


@pytest.fixture
def db(tmp_path, database_url: str):  # noqa: F811
    d = Database(database_url or f"sqlite:///{tmp_path / 'flavors.db'}")
    d.migrate()
    yield d
    d.dispose()


def spec(**fields) -> flavors.FlavorSpec:
    return flavors.FlavorSpec(**{"name": "f", "vcpus": 1, "ram": 512, **fields})


def test_the_seeded_catalog(db: Database) -> None:
    with db.session() as s:
        rows = [(f.id, f.name, f.vcpus, f.ram, f.disk) for f in s.scalars(select(Flavor).order_by(Flavor.id))]
        assert rows == SEEDED
        assert all(f.gpus == 0 and f.is_public for f in s.scalars(select(Flavor)))
        for fid, name, vcpus, ram, _ in SEEDED:
            assert flavors.get_flavor(s, fid) is flavors.get_flavor(s, name)
            assert flavors.check_flavor(s, name).id == fid
            assert (flavors.resolve_size(s, fid).vcpus, flavors.resolve_size(s, name).ram) == (vcpus, ram)
    # The constants the lowest layer keeps are the seeds.
    assert [(f.id, f.name, f.vcpus, f.ram) for f in constants.CATALOG] == [r[:4] for r in SEEDED]


@pytest.mark.parametrize("ref", [None, "", "m1.huge", "M1.SMALL", "6", "ds512M"])
def test_names_none_or_unknown(db: Database, ref: str | None) -> None:
    with db.session() as s:
        # A node of a reference that names nothing (or no flavor any more) is the default's size.
        assert flavors.resolve_size(s, ref).name == "m1.small"
        if not ref:
            assert flavors.check_flavor(s, ref) is None  # naming none: the default applies
            return
        with pytest.raises(InvalidInput, match=f"^Unable to find flavor {ref}\\.$"):
            flavors.check_flavor(s, ref)
        with pytest.raises(NotFound, match=f"^Flavor {ref} could not be found\\.$"):
            flavors.get_flavor(s, ref)


def test_create_and_private_flavors(db: Database) -> None:
    longest = "g" * 255
    made = flavors.create_flavor(db, ADMIN, spec(name=longest, vcpus=1024, ram=flavors.MAX_RAM_MB,
                                                 disk=flavors.MAX_DISK_GB, gpus=64, id="x" * 64))
    assert (made.id, made.name, made.gpus) == ("x" * 64, longest, 64)
    auto = flavors.create_flavor(db, ADMIN, spec(name="secret", is_public=False, description="é" * 100))
    assert len(auto.id) == 36 and auto.is_public is False
    with db.session() as s:
        assert flavors.check_flavor(s, "secret", ADMIN).id == auto.id
        # A private flavor is an admin's: to anyone else it does not exist.
        with pytest.raises(InvalidInput, match="Unable to find flavor secret"):
            flavors.check_flavor(s, "secret", MEMBER)
        with pytest.raises(NotFound):
            flavors.get_flavor(s, auto.id, MEMBER)
    assert [f.name for f in flavors.list_flavors(db, MEMBER, is_public=None)] == [r[1] for r in SEEDED] + [longest]
    assert [f.name for f in flavors.list_flavors(db, ADMIN, is_public=False)] == ["secret"]
    assert len(flavors.list_flavors(db, ADMIN, is_public=None)) == 7


@pytest.mark.parametrize(("fields", "conflict"), [
    ({"name": "m1.small"}, "Flavor with name m1.small already exists."),
    ({"name": "new", "id": "2"}, "Flavor with ID 2 already exists."),
    ({"name": "3"}, "Flavor name 3 is another flavor's id"),
    ({"name": "new", "id": "m1.tiny"}, "Flavor ID m1.tiny is another flavor's name"),
])
def test_ids_and_names_stay_unambiguous(db: Database, fields: dict, conflict: str) -> None:
    with pytest.raises(Conflict, match=conflict):
        flavors.create_flavor(db, ADMIN, spec(**fields))
    assert len(flavors.list_flavors(db, ADMIN, is_public=None)) == 5


@pytest.mark.parametrize("fields", [
    {"name": ""}, {"name": "g" * 256}, {"name": " lead"}, {"name": "trail "}, {"name": "tab\there"},
    {"vcpus": 0}, {"vcpus": 1025}, {"vcpus": True}, {"vcpus": "2"}, {"ram": 0},
    {"ram": flavors.MAX_RAM_MB + 1}, {"disk": -1}, {"disk": 65537}, {"gpus": -1}, {"gpus": 65},
    {"id": ""}, {"id": "x" * 65}, {"id": "a/b"}, {"id": " a"}, {"is_public": "yes"}, {"extra": 1},
])
def test_spec_bounds(fields: dict) -> None:
    with pytest.raises(ValidationError):
        spec(**fields)


def test_only_admins_change_the_catalog(db: Database) -> None:
    with pytest.raises(Forbidden, match="os_compute_api:os-flavor-manage:create"):
        flavors.create_flavor(db, MEMBER, spec())
    with pytest.raises(Forbidden):
        flavors.delete_flavor(db, MEMBER, "m1.tiny")
    with pytest.raises(Forbidden):
        flavors.set_gpus(db, MEMBER, "m1.tiny", 1)
    assert len(flavors.list_flavors(db, ADMIN, is_public=None)) == 5


@pytest.mark.parametrize("user", ["cluster", "master", "template", "nodegroup"])
def test_a_flavor_in_use_stays(db: Database, user: str) -> None:
    flavors.create_flavor(db, ADMIN, spec(name="used", id="u1"))
    with db.session() as s:
        s.add(Project(id="p-member", name="member", domain_id="default"))
        s.flush()
        ct = ClusterTemplate(project_id="p-member", user_id="u", name="t", coe="swarm", image_id="i",
                             flavor_id="used" if user == "template" else None)
        s.add(ct)
        s.flush()
        c = Cluster(project_id="p-member", user_id="u", name="c", cluster_template_id=ct.uuid, coe="swarm",
                    host_tag="abcd1234", flavor_id="u1" if user == "cluster" else None,
                    master_flavor_id="used" if user == "master" else None)
        s.add(c)
        s.flush()
        if user == "nodegroup":
            s.add(NodeGroup(cluster_id=c.id, project_id="p-member", name="g", flavor_id="u1"))
    with pytest.raises(Conflict, match=r"Flavor used \(u1\) is in use by 1 "):
        flavors.delete_flavor(db, ADMIN, "used")
    with pytest.raises(Conflict, match="is in use"):
        flavors.set_gpus(db, ADMIN, "u1", 2)
    assert flavors.set_gpus(db, ADMIN, "u1", 0).gpus == 0  # no change: allowed
    with db.session() as s:
        s.execute(NodeGroup.__table__.delete())
        s.execute(Cluster.__table__.delete())
        s.execute(ClusterTemplate.__table__.delete())
    assert flavors.set_gpus(db, ADMIN, "used", 2).gpus == 2
    flavors.delete_flavor(db, ADMIN, "used")
    with db.session() as s, pytest.raises(NotFound):
        flavors.get_flavor(s, "u1")


def test_the_default_flavor_stays(db: Database) -> None:
    with pytest.raises(Conflict, match="m1.small is the default flavor"):
        flavors.delete_flavor(db, ADMIN, "2")
    with pytest.raises(Conflict, match="default flavor"):
        flavors.set_gpus(db, ADMIN, "m1.small", 1)


def test_paging_and_sorting(db: Database) -> None:
    names = [f.name for f in flavors.list_flavors(db, ADMIN, sort_key="memory_mb", sort_dir="desc")]
    assert names == ["m1.xlarge", "m1.large", "m1.medium", "m1.small", "m1.tiny"]
    page = flavors.list_flavors(db, ADMIN, limit=2, sort_key="name")
    assert [f.name for f in page] == ["m1.large", "m1.medium"]
    rest = flavors.list_flavors(db, ADMIN, limit=10, marker=page[-1].id, sort_key="name")
    assert [f.name for f in rest] == ["m1.small", "m1.tiny", "m1.xlarge"]
    assert [f.id for f in flavors.list_flavors(db, ADMIN, min_ram=4096, min_disk=80)] == ["4", "5"]
    assert flavors.list_flavors(db, ADMIN, limit=0) == []
    for kwargs, message in (({"sort_key": "bogus"}, "Sort key supplied is invalid"),
                            ({"sort_dir": "up"}, "Unknown sort direction"),
                            ({"limit": -1}, "limit param must be positive"),
                            ({"marker": "nope"}, r"marker \[nope\] not found")):
        with pytest.raises(InvalidInput, match=message):
            flavors.list_flavors(db, ADMIN, **kwargs)


def test_naming_and_deleting_a_flavor_never_both_commit(db: Database, database_url: str) -> None:  # noqa: F811
    """A template naming a flavor holds its row (shared) until it commits; a delete meanwhile
    waits, then sees the template and refuses. (SQLite has one writer at a time: PostgreSQL only.)"""
    if not database_url:
        pytest.skip("row locks are PostgreSQL's; SQLite serialises writers")
    import threading

    flavors.create_flavor(db, ADMIN, spec(name="racy", id="r-1"))
    outcome: list[BaseException | None] = []

    def delete() -> None:
        try:
            flavors.delete_flavor(db, ADMIN, "r-1")
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    with db.session() as s:
        s.add(Project(id="p-member", name="member", domain_id="default"))
        assert flavors.check_flavor(s, "racy", MEMBER).id == "r-1"
        deleter = threading.Thread(target=delete)
        deleter.start()
        deleter.join(timeout=1.0)
        assert deleter.is_alive(), "the delete did not wait for the transaction naming the flavor"
        s.add(ClusterTemplate(project_id="p-member", user_id="u", name="t", coe="swarm", image_id="i",
                              flavor_id="racy"))
    deleter.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], Conflict), outcome
    with db.session() as s:
        assert flavors.get_flavor(s, "racy").id == "r-1"
