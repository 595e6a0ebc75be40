"""Masters as the Rust library takes them: URLs, read from redis-py clients if need be."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

DEFAULT_MASTER = "redis://localhost:6379/0"

_FORMS = (
    "a URL (redis://[user[:password]@]host[:port][/db], rediss:// for TLS, "
    "unix:///path/to/socket) or a redis.Redis / redis.asyncio.Redis client"
)


def _class_names(cls: type) -> set[str]:
    return {c.__name__ for c in getattr(cls, "__mro__", (cls,))}


def master_url(master: object) -> str:
    """The URL of one master: a URL as given, or one read from a redis-py client's
    connection settings (host, port, db, username, password, TLS, Unix socket)."""
    if isinstance(master, str):
        return master
    pool = getattr(master, "connection_pool", None)
    kwargs: Any = getattr(pool, "connection_kwargs", None)
    connection_class = getattr(pool, "connection_class", None)
    if pool is None or not isinstance(kwargs, dict) or connection_class is None:
        raise TypeError(f"cannot read a master from {master!r}: give {_FORMS}")
    names = _class_names(type(pool)) | _class_names(connection_class)
    if any("Sentinel" in name for name in names):
        raise TypeError(
            f"cannot read a master from {master!r}: a Sentinel-managed client names no "
            f"fixed server; give the master's URL instead ({_FORMS})"
        )
    if kwargs.get("credential_provider") is not None:
        raise TypeError(
            f"cannot read a master from {master!r}: its credentials come from a "
            "credential_provider; give a URL with the username and password instead"
        )
    user = kwargs.get("username")
    password = kwargs.get("password")
    db = int(kwargs.get("db") or 0)
    if "UnixDomainSocketConnection" in names:
        path = kwargs.get("path")
        if not path:
            raise TypeError(f"cannot read a master from {master!r}: no socket path")
        query = [f"db={db}"]
        if user:
            query.append("user=" + quote(str(user), safe=""))
        if password:
            query.append("pass=" + quote(str(password), safe=""))
        return f"unix://{path}?{'&'.join(query)}"
    host = str(kwargs.get("host") or "localhost")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = int(kwargs.get("port") or 6379)
    auth = ""
    if user or password:
        auth = quote(str(user or ""), safe="")
        if password:
            auth += ":" + quote(str(password), safe="")
        auth += "@"
    tls = "SSLConnection" in names
    url = f"{'rediss' if tls else 'redis'}://{auth}{host}:{port}/{db}"
    if tls:
        if kwargs.get("ssl_ca_certs") or kwargs.get("ssl_ca_path") or kwargs.get("ssl_ca_data"):
            raise TypeError(
                f"cannot use {master!r}: TLS with a private CA (ssl_ca_certs, ssl_ca_path, "
                "ssl_ca_data) is not supported yet; the system's roots are (rediss:// URL)"
            )
        if kwargs.get("ssl_certfile") or kwargs.get("ssl_keyfile"):
            raise TypeError(
                f"cannot use {master!r}: TLS client certificates (ssl_certfile, "
                "ssl_keyfile) are not supported yet"
            )
        reqs = kwargs.get("ssl_cert_reqs")
        if reqs is not None and str(reqs).lower() in ("none", "0", "verifymode.cert_none"):
            url += "#insecure"
    return url


def master_urls(masters: object) -> list[str]:
    """Every master's URL; no masters at all means a server on localhost, as in
    pottery-semaphore (which then uses ``redis.Redis()``)."""
    if isinstance(masters, str) or hasattr(masters, "connection_pool"):
        masters = [masters]
    if not isinstance(masters, Iterable):
        raise TypeError(f"masters must be an iterable of masters, got {masters!r}")
    urls = [master_url(m) for m in masters]
    return urls or [DEFAULT_MASTER]
