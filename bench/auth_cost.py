"""What authentication costs, in-process (no network, one thread), on a fresh SQLite database:

- issuing a token by password, and by application credential (each verifies an argon2id hash);
- checking a token floe has not seen yet (one indexed read), and one kept in the API's cache
  (what every request after the first costs);
- a whole cached request through the ASGI stack (GET /v1/clusters, empty), with a Keystone token
  and with the admin API token, for comparison.

    .venv/bin/python bench/auth_cost.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from floe.api.app import create_app
from floe.config import Settings
from floe.db.session import Database
from floe.runtime import Runtime
from floe.services import accounts, identity
from floe.services.identity import Scope


def timed(fn, rounds: int) -> float:
    """Median seconds of `rounds` calls."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


async def request_cost(app, token: str, rounds: int) -> float:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        headers = {"X-Auth-Token": token}
        await client.get("/v1/clusters", headers=headers)  # warm the caches
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            resp = await client.get("/v1/clusters", headers=headers)
            times.append(time.perf_counter() - t0)
            assert resp.status_code == 200, resp.text
        return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="floe-auth-bench-"))
    settings = Settings(home=home, provider="simulated")
    db = Database(settings.db_url)
    db.migrate()
    admin_token = identity.bootstrap_admin(db, settings.admin_token_file)
    admin = identity.authenticate(db, admin_token)
    project = accounts.new_project(db, admin, "bench")
    user = accounts.new_user(db, admin, "bench", password="bench-password")
    member = next(r for r in accounts.list_roles(db, admin) if r.name == "member")
    accounts.grant(db, admin, project.id, user.id, member.id)
    scope = Scope(project_id=project.id)

    def by_password() -> identity.Issued:
        return identity.issue_for_password(db, password="bench-password", scope=scope, lifetime=3600,
                                           name="bench", domain_id="default")

    issued = by_password()
    caller = identity.authenticate(db, issued.secret)
    cred = accounts.create_credential(db, caller, user.id, "bench")
    rows = [("issue a token: password (argon2id verify)", timed(by_password, args.rounds)),
            ("issue a token: application credential (argon2id verify)",
             timed(lambda: identity.issue_for_application_credential(db, secret=cred.secret, lifetime=3600,
                                                                     cred_id=cred.credential.id), args.rounds)),
            ("check a token not in the cache (one indexed read)",
             timed(lambda: identity.authenticate_until(db, issued.secret), args.rounds * 10))]
    runtime = Runtime(settings=settings, db=db)
    app = create_app(runtime)
    keystone = asyncio.run(request_cost(app, issued.secret, args.rounds * 50))
    api_token = asyncio.run(request_cost(app, admin_token, args.rounds * 50))
    rows += [("GET /v1/clusters, Keystone token (cached)", keystone),
             ("GET /v1/clusters, admin API token (cached)", api_token)]
    print(f"rounds: {args.rounds} (token checks ×10, requests ×50); medians; Python {sys.version.split()[0]}")
    print("| what | median |")
    print("|---|---:|")
    for what, seconds in rows:
        print(f"| {what} | {seconds * 1e3:.2f} ms |")
    db.dispose()
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
