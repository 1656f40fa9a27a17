"""Who may talk to the server, and names and ids that are safe on disk and in headers. Pure functions.

- A job id is 128 random bits (``secrets``): knowing one is the capability to read that job,
  and there is no route that lists them.
- Upload names are only ever shown and used as download names: files on disk are named by
  their index in the job, so no client name reaches a path. ``safe_name`` still strips any
  folder part and odd characters, so the names are harmless in headers and zip files too.
- A browser page on another site can send a form to a server on 127.0.0.1; the origin and
  Host checks refuse such cross-site requests and DNS-rebinding tricks.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import unicodedata
from urllib.parse import urlsplit

_JOB_ID = re.compile(r"[A-Za-z0-9_-]{22}")
_UNSAFE = re.compile(r"[^\w .()+,=@-]")  # \w is Unicode-aware: accented names stay readable
MAX_NAME_LENGTH = 120


def new_job_id() -> str:
    """22 URL-safe characters carrying 128 random bits."""
    return secrets.token_urlsafe(16)


def is_job_id(text: str) -> bool:
    """Whether ``text`` has the shape of a job id (checked before it is joined to any path)."""
    return _JOB_ID.fullmatch(text) is not None


def is_local_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1), with or without brackets."""
    host = host.strip().strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_matches(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header is ``Bearer <token>`` (compared in constant time)."""
    if not authorization:
        return False
    scheme, _, given = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return secrets.compare_digest(given.strip().encode(), token.encode())


def _hostname(netloc: str) -> str | None:
    try:
        return urlsplit(f"//{netloc}").hostname
    except ValueError:
        return None


def host_allowed(host_header: str | None, *, local_only: bool) -> bool:
    """A server bound to loopback answers only requests addressed to a local name: a page on
    another site that rebinds its own domain to 127.0.0.1 still sends its domain as Host."""
    if not local_only:
        return True
    hostname = _hostname(host_header or "")
    return hostname is not None and is_local_host(hostname)


def same_origin(origin: str | None, host_header: str | None) -> bool:
    """Whether a request's ``Origin`` (sent by browsers on cross-site and POST requests) is this
    server; a request without one (curl, scripts) is not a cross-site browser request."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    return (
        parts.scheme in ("http", "https") and bool(parts.netloc) and parts.netloc.lower() == (host_header or "").lower()
    )


def safe_name(raw: str | None, *, fallback: str = "image") -> str:
    """A display and download name from a client's file name: its last path part (either kind of
    slash), Unicode-normalised, odd characters replaced by '_', no leading dot, at most
    ``MAX_NAME_LENGTH`` characters (the extension kept); ``fallback`` when nothing is left."""
    name = unicodedata.normalize("NFC", raw or "")
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")  # control and format characters
    name = _UNSAFE.sub("_", name).strip(" .")
    if not name or set(name) <= {"_"}:
        return fallback
    if len(name) > MAX_NAME_LENGTH:
        stem, dot, ext = name.rpartition(".")
        ext = ext if dot and len(ext) <= 10 else ""
        name = (stem if ext else name)[: MAX_NAME_LENGTH - len(ext) - 1].rstrip(" .") + (f".{ext}" if ext else "")
    return name
