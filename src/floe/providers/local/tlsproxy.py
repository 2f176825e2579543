"""A node's TLS endpoint: mutual TLS on ADDRESS:2376 in front of dockerd's unix socket.

Run inside the node (stdlib only, by path: `python3 -I -S tlsproxy.py ADDRESS PORT TLS_DIR SOCKET`).
dockerd cannot reload its TLS files (SIGHUP leaves them alone) and refuses live-restore in
swarm mode, so rotating a cluster's CA through dockerd's own listener would restart every
node's containers. Here the TLS side is floe's: when ca.pem, cert.pem or key.pem change (they
are checked every second and at each new connection), new connections use the new files and
every open one is closed, so a client certificate of the old CA loses access at once, while
dockerd and its containers are never touched.

Bytes are copied both ways unchanged (HTTP, hijacked attach/exec streams alike). TLS runs on
memory BIOs rather than asyncio's TLS transport, which cannot half-close: `docker exec -i`
sends close_notify when its stdin ends and still reads the output; that end is passed on to
dockerd as a write shutdown of the unix socket. Flow control follows the transports' own
pause/resume signals, so a slow client slows dockerd's side rather than filling memory.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys

CHECK_INTERVAL = 1.0
CHUNK = 65536
FILES = ("ca.pem", "cert.pem", "key.pem")


class Proxy:
    def __init__(self, tls_dir: str, upstream: str):
        self.tls_dir = tls_dir
        self.upstream = upstream
        self.stamp: tuple | None = None
        self.context: ssl.SSLContext | None = None
        self.open: set[ClientSide] = set()

    def _stamp(self) -> tuple | None:
        # Inode and mtime: floe replaces each file by a rename, which always gives a new inode.
        try:
            return tuple((st.st_ino, st.st_mtime_ns) for st in (os.stat(os.path.join(self.tls_dir, f)) for f in FILES))
        except OSError:
            return None

    def reload(self) -> None:
        """Load the TLS files if they changed; on a change, drop every open connection."""
        stamp = self._stamp()
        if stamp is None or stamp == self.stamp:
            return
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.options |= ssl.OP_NO_RENEGOTIATION
        try:
            ctx.load_cert_chain(os.path.join(self.tls_dir, "cert.pem"), os.path.join(self.tls_dir, "key.pem"))
            ctx.load_verify_locations(os.path.join(self.tls_dir, "ca.pem"))
        except (OSError, ssl.SSLError, ValueError) as exc:
            # Files caught half-replaced (a certificate without its key yet): the next check retries.
            print(f"tlsproxy: keeping the previous certificates: {exc}", file=sys.stderr, flush=True)
            return
        first = self.context is None
        self.context, self.stamp = ctx, stamp
        if not first:
            print(f"tlsproxy: certificates reloaded; closing {len(self.open)} connection(s)", file=sys.stderr,
                  flush=True)
            for conn in list(self.open):
                conn.abort()

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            self.reload()


class ClientSide(asyncio.Protocol):
    """One client connection: TLS on memory BIOs, then bytes to and from dockerd's socket."""

    def __init__(self, proxy: Proxy):
        self.proxy = proxy
        self.transport: asyncio.Transport | None = None
        self.up: asyncio.Transport | None = None
        self.pending: list[bytes] = []  # read before dockerd's socket was connected
        self.pending_eof = False
        self.tls: ssl.SSLObject | None = None
        self.handshaken = False
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.proxy.reload()
        if self.proxy.context is None:
            transport.abort()
            return
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = self.proxy.context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.proxy.open.add(self)

    def data_received(self, data: bytes) -> None:
        if self.tls is None or self.closed:
            return
        self.incoming.write(data)
        try:
            if not self.handshaken:
                try:
                    self.tls.do_handshake()
                except ssl.SSLWantReadError:
                    return
                finally:
                    self._flush()
                self.handshaken = True
                asyncio.get_running_loop().create_task(self._connect_up())
            while True:
                try:
                    chunk = self.tls.read(CHUNK)
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:  # close_notify: the client has no more to send
                    chunk = b""
                if not chunk:
                    self._to_up_eof()
                    break
                self._to_up(chunk)
            self._flush()
        except (ssl.SSLError, OSError):
            self.abort()  # a client certificate of no trusted CA, or a broken stream

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def _connect_up(self) -> None:
        try:
            await asyncio.get_running_loop().create_unix_connection(lambda: DockerSide(self), self.proxy.upstream)
        except OSError:
            self.abort()

    def up_connected(self, transport: asyncio.Transport) -> None:
        if self.closed:
            transport.abort()
            return
        self.up = transport
        for chunk in self.pending:
            transport.write(chunk)
        self.pending.clear()
        if self.pending_eof:
            transport.write_eof()

    def _to_up(self, chunk: bytes) -> None:
        if self.up is None:
            self.pending.append(chunk)
        else:
            self.up.write(chunk)

    def _to_up_eof(self) -> None:
        if self.up is None:
            self.pending_eof = True
        elif not self.up.is_closing() and self.up.can_write_eof():
            self.up.write_eof()

    def from_up(self, data: bytes) -> None:
        if self.tls is None or self.closed:
            return
        try:
            self.tls.write(data)
        except (ssl.SSLError, OSError):
            self.abort()
            return
        self._flush()

    def up_finished(self) -> None:
        """dockerd has no more to say: end the TLS stream properly (close_notify), then the connection."""
        if self.closed:
            return
        try:
            self.tls.unwrap()
        except (ssl.SSLError, OSError):
            pass  # unwrap waits for the client's close_notify too; ours is sent already
        self._flush()
        self.close()

    # Flow control: a client that does not keep up pauses dockerd's side, and the other way round.
    def pause_writing(self) -> None:
        if self.up is not None:
            self.up.pause_reading()

    def resume_writing(self) -> None:
        if self.up is not None:
            self.up.resume_reading()

    def close(self) -> None:
        self.closed = True
        self.proxy.open.discard(self)
        if self.transport is not None:
            self.transport.close()
        if self.up is not None:
            self.up.close()

    def abort(self) -> None:
        self.closed = True
        self.proxy.open.discard(self)
        if self.transport is not None:
            self.transport.abort()
        if self.up is not None:
            self.up.abort()

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.proxy.open.discard(self)
        if self.up is not None:
            self.up.close()


class DockerSide(asyncio.Protocol):
    """The unix-socket side of one connection."""

    def __init__(self, client: ClientSide):
        self.client = client

    def connection_made(self, transport) -> None:
        self.client.up_connected(transport)

    def data_received(self, data: bytes) -> None:
        self.client.from_up(data)

    def eof_received(self) -> bool:
        self.client.up_finished()
        return False

    def connection_lost(self, exc) -> None:
        self.client.up_finished()

    def pause_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.resume_reading()


async def main(address: str, port: int, tls_dir: str, upstream: str) -> None:
    proxy = Proxy(tls_dir, upstream)
    proxy.reload()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: ClientSide(proxy), address, port, reuse_address=True, backlog=128)
    watcher = asyncio.create_task(proxy.watch())
    async with server:
        await server.serve_forever()
    watcher.cancel()


if __name__ == "__main__":
    addr, port_text, directory, sock = sys.argv[1:5]
    asyncio.run(main(addr, int(port_text), directory, sock))
