"""uWSGI's wire format, the two uses toolkit has for it: an HTTP request sent straight to an
app vassal's uwsgi socket (a release's health check, before any router sends it traffic),
and a packet to a router's subscription server (core/subscription.c).

A uwsgi packet is a 4-byte header (modifier1, little-endian 16-bit size, modifier2) and
then key/value pairs, each with a little-endian 16-bit length before it."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

SUBSCRIPTION_MODIFIER = 224
UNSUBSCRIBE = 1


def packet(modifier1: int, modifier2: int, pairs: dict[str, str]) -> bytes:
    body = b"".join(
        struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
        for k, v in ((key.encode(), value.encode()) for key, value in pairs.items())
    )
    return struct.pack("<BHB", modifier1, len(body), modifier2) + body


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def request_packet(path: str, host: str) -> bytes:
    """GET `path`, as a router would pass it to the app (the app answers in HTTP)."""
    target, _, query = path.partition("?")
    variables = {
        "REQUEST_METHOD": "GET",
        "REQUEST_URI": path,
        "PATH_INFO": target,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": host.rpartition(":")[0] or host,
        "SERVER_PORT": host.rpartition(":")[2] or "80",
        "HTTP_HOST": host,
        "REMOTE_ADDR": "127.0.0.1",
        "UWSGI_SCHEME": "http",
    }
    return packet(0, 0, variables)


def request(address: tuple[str, int], path: str, host: str, timeout: float) -> Answer:
    """GET `path` from a uwsgi socket: the app answers with a whole HTTP response."""
    with socket.create_connection(address, timeout=timeout) as connection:
        connection.sendall(request_packet(path, host))
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ")
    if len(status) < 2 or not status[1].isdigit():
        raise ConnectionError(f"not an HTTP answer: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(status[1]), headers, body)


def unsubscribe(server: tuple[str, int], key: str, node: str) -> None:
    """Tell a subscription server to stop sending `key`'s requests to `node` at once (the
    node's own graceful stop says so too, but only once it has begun to stop)."""
    message = packet(
        SUBSCRIPTION_MODIFIER,
        UNSUBSCRIBE,
        {"key": key, "address": node, "modifier1": "0", "modifier2": "0"},
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(message, server)
