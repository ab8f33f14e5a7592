"""Realistic events for the operator's side (collector tests and scripts/collect_bench.py):
many developers and commands, skewed durations, make breakdowns; each valid against the
shipped schema."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

COMMANDS = [f"dev.{name}" for name in ("provision", "up", "down", "test", "lint", "migrate")]
COMMANDS += [f"svc{i}.build" for i in range(20)]


def _uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def developers(count: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [_uuid4(rng) for _ in range(count)]


def event(
    rng: random.Random, anonymous_id: str | None = None, days: float = 20, **fields: Any
) -> dict[str, Any]:
    """One command_run event (schema_version 2) that started in the last `days`; `fields`
    override."""
    command = rng.choice(COMMANDS)
    duration = rng.lognormvariate(8, 1.2)
    start = time.time() - rng.uniform(0, days * 86400)
    targets = [
        {
            "name": f"{command}.step{i}",
            "start_ms": round(rng.uniform(0, duration), 3),
            "duration_ms": round(rng.uniform(0, duration / 2), 3),
            "exit_code": 0,
            "lines": rng.randint(1, 5),
            "critical": i == 0,
            "depth": rng.randint(0, 2),
        }
        for i in range(rng.randint(0, 8))
    ]
    failed = rng.random() < 0.1
    value = {
        "schema_version": 2,
        "event": "command_run",
        "message_id": _uuid4(rng),
        "anonymous_id": anonymous_id or _uuid4(rng),
        "app": "devstack",
        "app_version": "2026.11",
        "tool_version": "0.1.0",
        "consent_version": 1,
        "command": command,
        "command_args": None,
        "command_type": "make",
        "start_time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start))
        + f".{int(start * 1000) % 1000:03d}+00:00",
        "duration_ms": round(duration, 3),
        "exit_code": 2 if failed else 0,
        "signal": None,
        "interrupted": False,
        "exit_code_derived": False,
        "cpu_user_s": round(duration / 3000, 3),
        "cpu_system_s": 0.01,
        "peak_memory_bytes": rng.randint(1 << 20, 1 << 30),
        "make_targets": targets or None,
        "make_file_targets": {"count": 2, "duration_ms": 12.5, "critical": 0} if targets else None,
        "make_targets_omitted": 0 if targets else None,
        "git_work_tree": True,
        "git_commit_time": "2026-11-20T09:30:00+00:00",
        "git_on_default_branch": rng.random() < 0.7,
        "git_dirty": rng.random() < 0.4,
        "git_behind_upstream": rng.randint(0, 20),
        "git_remote_hash": None,
        "os": rng.choice(["linux", "darwin"]),
        "os_release": "6.1.0-18-amd64",
        "arch": rng.choice(["amd64", "arm64"]),
        "python_version": "3.11.7",
        "cpu_count": rng.choice([4, 8, 16]),
        "memory_total_bytes": 17179869184,
        "ci": rng.random() < 0.2,
        "ci_vendor": None,
        "container": False,
    }
    value.update(fields)
    return value


def events(count: int, seed: int = 7, people: int = 40, days: float = 20) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    ids = developers(people, seed)
    return [event(rng, rng.choice(ids), days) for _ in range(count)]
