"""The Python examples of the package's page (python/README.md, its PyPI page) run as
written, against a test server: `Redis()` and `redis://127.0.0.1:6379` are pointed at it,
and `do_work` / `do_async_work` are given."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from conftest import REPO, Server


def python_blocks(page: Path) -> list[str]:
    """The ```python blocks of `page`, in order."""
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


def run_blocks(blocks: list[str], server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs the blocks in order in one namespace, as a reader would paste them; each of
    `do_work` and `do_async_work` must have been called once."""
    sync_redis, async_redis = redis.Redis, redis.asyncio.Redis

    def local(cls: Any) -> Any:
        def make(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("port", server.port)
            return cls(*args, **kwargs)

        return make

    monkeypatch.setattr(redis, "Redis", local(sync_redis))
    monkeypatch.setattr(redis.asyncio, "Redis", local(async_redis))
    worked: list[str] = []

    async def do_async_work() -> None:
        worked.append("async")

    namespace: dict[str, Any] = {
        "do_work": lambda: worked.append("sync"),
        "do_async_work": do_async_work,
    }
    for block in blocks:
        code = block.replace("redis://127.0.0.1:6379", server.url)
        exec(compile(code, "README.md", "exec"), namespace)
    assert worked == ["sync", "async"]


def test_the_package_page_examples_run(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(REPO / "python" / "README.md")
    assert len(blocks) >= 7
    run_blocks(blocks, server, monkeypatch)
