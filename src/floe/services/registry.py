"""Who may do what in floe's image registry: the token realm's decisions, and clusters' pull credentials.

Namespaces: `library/…` is public (anyone pulls, even without credentials; admins push and
delete), `<project id>/…` is a project's (its members push, pull and delete; its clusters'
pull credentials pull). Anything else only admins may touch. The registry itself asks for
a token on every request (distribution's token auth) and enforces what the token grants.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from sqlalchemy import select

from floe import registry_auth
from floe.db.models.clusters import Cluster
from floe.db.session import Database
from floe.errors import InvalidInput, NotAuthorized, NotFound
from floe.providers.base import ProviderWithImageImport
from floe.runtime import Runtime
from floe.services import identity
from floe.services.clusters import find_cluster
from floe.services.identity import Caller

# "repository:NAME:ACTIONS" with NAME as distribution spells repository names; "registry:catalog:*".
SCOPE_RE = re.compile(r"^(repository|registry)(?:\([a-z0-9]+\))?:([a-z0-9]+(?:(?:[._/]|__|-+)[a-z0-9]+)*):([a-z*,]*)$")
PULL, PUSH, DELETE, ANY = "pull", "push", "delete", "*"
KNOWN_ACTIONS = {PULL, PUSH, DELETE, ANY}
MAX_SCOPES = 16


@dataclass(frozen=True)
class Subject:
    """Who asks: a floe caller, a cluster's pull credential, or nobody."""

    name: str  # the token's `sub`
    project_id: str | None = None
    is_admin: bool = False
    pull_only: bool = False


ANONYMOUS = Subject("anonymous")


def _basic(authorization: str | None) -> tuple[str, str] | None:
    if not authorization:
        return None
    kind, _, value = authorization.partition(" ")
    if kind.lower() != "basic":
        raise NotAuthorized("send HTTP Basic credentials (what `docker login` sends)")
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise NotAuthorized("malformed Basic credentials") from None
    if not sep:
        raise NotAuthorized("malformed Basic credentials")
    return user, password


def check_credentials(db: Database, username: str, password: str) -> Caller:
    """The floe caller these credentials stand for (NotAuthorized otherwise).

    The one place a registry login is checked against floe's identities: the password is a
    floe token (any username), or the username is `USER@PROJECT` with the user's password, or
    an application credential's id with its secret (`docker login -u ID`).
    """
    if password.startswith(identity.TOKEN_PREFIX):
        return identity.authenticate(db, password)
    return identity.caller_for_login(db, username, password)


def subject(db: Database, keys: registry_auth.Keys, authorization: str | None) -> Subject:
    """Who the realm's caller is, from the Authorization header; NotAuthorized for bad credentials."""
    creds = _basic(authorization)
    if creds is None:
        return ANONYMOUS
    username, password = creds
    if username.startswith(registry_auth.CLUSTER_USER_PREFIX):
        cluster_uuid = username.removeprefix(registry_auth.CLUSTER_USER_PREFIX)
        if keys.check_pull_password(cluster_uuid, password):
            with db.session() as session:
                project = session.scalars(select(Cluster.project_id).where(Cluster.uuid == cluster_uuid)).first()
            if project is not None:  # a deleted cluster's credential is worth nothing
                return Subject(username, project_id=project, pull_only=True)
        raise NotAuthorized("invalid cluster pull credential")
    caller = check_credentials(db, username, password)
    # A reader of a project pulls its images; pushing and deleting need the member role.
    return Subject(f"{caller.user_id}@{caller.project_id}", project_id=caller.project_id, is_admin=caller.is_admin,
                   pull_only=not caller.can_write)


def allowed(who: Subject, repository: str) -> set[str]:
    """The actions `who` may take on `repository`."""
    namespace = repository.split("/", 1)[0]
    own = who.project_id is not None and namespace == registry_auth.project_namespace(who.project_id)
    if who.pull_only:
        return {PULL} if own or namespace == registry_auth.LIBRARY else set()
    if own or (who.is_admin and namespace == registry_auth.LIBRARY):
        return {PULL, PUSH, DELETE, ANY}
    if who.is_admin or namespace == registry_auth.LIBRARY:
        # Admins may read every namespace (to help, to audit); only their own and library are theirs to change.
        return {PULL}
    return set()


def grants(who: Subject, scopes: list[str]) -> list[dict]:
    """The token's `access` claim: of each requested scope, what `who` may do (nothing is an empty list)."""
    if len(scopes) > MAX_SCOPES:
        raise InvalidInput(f"at most {MAX_SCOPES} scopes per token")
    access: list[dict] = []
    for scope in scopes:
        match = SCOPE_RE.match(scope)
        if match is None:
            raise InvalidInput(f"malformed scope {scope!r}")
        kind, name, actions = match.groups()
        wanted = {a for a in actions.split(",") if a} & KNOWN_ACTIONS
        if kind == "registry":
            given = sorted(wanted) if who.is_admin and name == "catalog" else []
        else:
            given = sorted(wanted & allowed(who, name))
        access.append({"type": kind, "name": name, "actions": given})
    return access


def issue_token(db: Database, keys: registry_auth.Keys, authorization: str | None, service: str | None,
                scopes: list[str]) -> dict:
    """The realm's answer: a signed token with what the caller may do of what it asked for.

    Anonymous callers get a token too (pull of library), as Docker Hub's realm does; bad
    credentials are a 401, which is how `docker login` learns they are wrong.
    """
    if service not in (None, registry_auth.SERVICE):
        raise InvalidInput(f"unknown service {service!r}: this realm serves {registry_auth.SERVICE!r}")
    who = subject(db, keys, authorization)
    token = keys.ensure().sign(who.name, grants(who, scopes))
    return {"token": token, "access_token": token, "expires_in": registry_auth.TOKEN_TTL}


def cluster_pull_credential(runtime: Runtime, caller: Caller, ident: str) -> dict:
    """A cluster's pull credential (pull of library and of its project), for its users' docker clients."""
    with runtime.db.session() as session:
        cluster = find_cluster(session, caller, ident)
        cluster_uuid, project_id = cluster.uuid, cluster.project_id
    provider = runtime.provider
    if not isinstance(provider, ProviderWithImageImport) or provider.registry_token_endpoint() is None:
        raise NotFound("this floe server's infra provider has no image registry")
    keys = registry_auth.keys(runtime.settings.home).ensure()
    return {
        "registry": provider.ensure_registry().address,
        "username": registry_auth.cluster_username(cluster_uuid),
        "password": keys.pull_password(cluster_uuid),
        "namespace": registry_auth.project_namespace(project_id),
    }
