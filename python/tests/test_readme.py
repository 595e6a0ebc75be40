"""The README's Python examples run as written, against a test server: `Redis()` and
`redis://127.0.0.1:6379` are pointed at it, and `do_work` / `do_async_work` are given."""

from __future__ import annotations

import re
from typing import Any

import pytest
import redis
import redis.asyncio
from conftest import REPO, Server


def python_blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_readme_examples_run(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks()
    assert len(blocks) >= 5
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
