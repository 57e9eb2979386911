"""Optuna study storage: RDB (SQLite by default, any SQLAlchemy URL for a shared database).

SQLite files are opened in WAL mode with ``synchronous=NORMAL``: a commit is
durable against the process being killed (SIGKILL loses nothing the database
acknowledged; only an operating-system crash could lose the last commits),
and commits cost microseconds instead of one ``fsync`` each.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def _sqlite_path(url: str) -> str | None:
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != prefix + ":memory:":
        return url[len(prefix):]
    return None


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An ``RDBStorage`` for ``url``; SQLite files get WAL + ``synchronous=NORMAL``."""
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(f"storage must be a database URL such as sqlite:///runs/x/study.db "
                         f"or postgresql://host/db, got {url!r}")
    path = _sqlite_path(url)
    kwargs = {}
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(path, timeout=60.0, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            return conn

        kwargs = {"creator": connect}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
