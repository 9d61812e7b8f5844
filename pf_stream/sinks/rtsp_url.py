"""Parse and check the ``--rtsp`` output address: ``rtsp://HOST:PORT/PATH``.

Conventions (jetson-utils' ``rtsp://@:8554/out`` included):

- ``@`` as the host means "all interfaces" (bind 0.0.0.0).
- No host (``rtsp://:8554/fused``) binds 127.0.0.1 only: a stream is never exposed to the
  network unless the user asks for it.
- No port means 8554, the usual unprivileged RTSP port; port 0 asks the OS for a free port
  (tests use it; the bound port is logged).
- The path is required: it is what viewers type, so we do not invent one.
- Credentials in the URL are refused: a password on the command line leaks into shell
  history and ``ps``; use ``--rtsp-user`` and the PF_STREAM_RTSP_PASSWORD variable.

Nothing here imports GStreamer, so the address is checked before anything heavy starts.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from pf_stream.errors import UserError

DEFAULT_PORT = 8554
ALL_INTERFACES = "0.0.0.0"
LOOPBACK = "127.0.0.1"

# A mount path: one or more /segments of ordinary URL characters.
_PATH_RE = re.compile(r"^(/[A-Za-z0-9._~\-]+)+$")
# A host name (RFC 1123 labels) — IP literals are checked by ipaddress.
_HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.?)+$")
_EXAMPLE = "e.g. rtsp://@:8554/fused (all interfaces) or rtsp://127.0.0.1:8554/fused"


@dataclass(frozen=True)
class RtspAddress:
    """Where the RTSP server listens and what viewers open.

    bind_host: address the server binds (0.0.0.0 / :: for all interfaces).
    port: TCP port to bind; 0 means "any free port" (the sink reports the real one).
    path: mount point, starting with '/'.
    """

    bind_host: str
    port: int
    path: str

    @property
    def all_interfaces(self) -> bool:
        return self.bind_host in (ALL_INTERFACES, "::")

    def client_url(self, port: int | None = None) -> str:
        """The URL a viewer on this machine opens (a wildcard bind is reached via loopback)."""
        host = LOOPBACK if self.all_interfaces else self.bind_host
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        return f"rtsp://{host}:{self.port if port is None else port}{self.path}"


def parse_rtsp_url(text: str) -> RtspAddress:
    """Parse ``rtsp://HOST:PORT/PATH``; raise a one-line UserError on anything malformed."""
    if not isinstance(text, str) or not text.lower().startswith("rtsp://"):
        raise UserError(f"malformed RTSP output {text!r}: it must start with rtsp:// ({_EXAMPLE})")
    rest = text[len("rtsp://"):]
    if "?" in rest or "#" in rest:
        raise UserError(f"malformed RTSP output {text!r}: no query or fragment allowed ({_EXAMPLE})")
    netloc, slash, path = rest.partition("/")
    path = "/" + path if slash else ""

    # jetson-utils' '@' means all interfaces; any other '@' is user info, which we refuse.
    all_interfaces = netloc.startswith("@")
    if all_interfaces:
        netloc = netloc[1:]
    if "@" in netloc:
        raise UserError(
            f"do not put credentials in the RTSP URL {_redact(text)!r}: use --rtsp-user NAME and "
            "set the password in the PF_STREAM_RTSP_PASSWORD environment variable"
        )

    host, port = _split_host_port(netloc, text)
    if all_interfaces:
        if host:
            raise UserError(f"malformed RTSP output {text!r}: '@' already means all interfaces, drop the host")
        host = ALL_INTERFACES
    elif not host:
        host = LOOPBACK
    else:
        host = _check_host(host, text)

    if not path or path == "/":
        raise UserError(f"RTSP output {text!r} needs a path that viewers open ({_EXAMPLE})")
    path = path.rstrip("/")
    if not _PATH_RE.match(path):
        raise UserError(
            f"malformed RTSP path {path!r} in {text!r}: use letters, digits and . _ ~ - between slashes"
        )
    return RtspAddress(bind_host=host, port=port, path=path)


def _split_host_port(netloc: str, text: str) -> tuple[str, int]:
    if netloc.startswith("["):  # [IPv6]:port
        host, sep, after = netloc[1:].partition("]")
        if not sep or (after and not after.startswith(":")):
            raise UserError(f"malformed RTSP output {text!r}: bad IPv6 address ({_EXAMPLE})")
        port_text = after[1:] if after else ""
    else:
        host, _, port_text = netloc.partition(":")
    if port_text == "":
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UserError(f"malformed RTSP port {port_text!r} in {text!r}: use 0..65535 (0 = any free port)")
    return host, int(port_text)


def _check_host(host: str, text: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOSTNAME_RE.match(host):
        raise UserError(f"malformed RTSP host {host!r} in {text!r}: use an IP address, a host name or '@'")
    return host


def _redact(text: str) -> str:
    """Hide whatever sits between '//' and '@' so an error line never prints a password."""
    return re.sub(r"(rtsp://)[^/@]*@", r"\1***@", text, flags=re.IGNORECASE)
