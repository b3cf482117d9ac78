"""One rule for secrets in every output: logs, errors, ``config check``, metrics, exit stats.

A property whose name says password, secret, token, key or credential is shown masked; a
URL never carries its user and password into a message (the configuration moves them into
their own fields, ``kafka.schema_registry.username`` and ``password``, at load).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "**********"
_SECRET_WORDS = ("password", "secret", "token", "key", "credential")


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def masked(properties: Mapping[str, object]) -> dict[str, object]:
    """The properties, each one whose name says it is a secret shown as ``MASK``."""
    return {key: MASK if is_secret_name(key) else value for key, value in properties.items()}


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """``https://user:pw@host/path`` -> (``https://host/path``, ``user``, ``pw``)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None, None
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return bare, user, password


def shown_url(url: str) -> str:
    """The URL as a message may show it: without a user and password."""
    return split_userinfo(url)[0]
