"""Sampling a server under load with py-spy, and where its CPU time went.

`py-spy record --format raw` writes collapsed stacks (`frame;frame;... count`);
idle samples (the event loop waiting) are left out, so shares are of busy time.
A share is inclusive: a sample counts for every category one of its frames matches
(so they overlap and do not add up to 100%).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

# (label, a frame that puts a sample in the category, a frame that keeps it out).
CATEGORIES: list[tuple[str, str, str | None]] = [
    ("pool pre-ping (BEGIN; ; ROLLBACK)", r"_async_ping \(|_do_ping_w_event \(|\.do_ping \(", None),
    ("bearer auth, whole", r"JWTAuthentication\.authenticate \(", None),
    ("  JWT decode (PyJWT)", r"TokenCodec\.decode \(", None),
    ("  load user + permissions", r"^load_user \(", None),
    ("  building the permissions query", r"^permissions_query \(", None),
    ("pool checkout/return (no ping)", r"_ConnectionFairy\._check(out|in) \(", r"_async_ping"),
    ("BEGIN/COMMIT/ROLLBACK", r"_start_transaction \(|_call_and_discard \(", None),
    ("building SQL statements", r"\(sqlalchemy/sql/", r"_execute_clauseelement|_async_ping"),
    ("executing SQL (compile cache, driver, rows)", r"_execute_clauseelement \(", None),
    ("ORM (session, identity map, flush)", r"\(sqlalchemy/orm/", None),
    ("admin history record", r"\(contrib/admin/history\.py", None),
    ("access log line", r"^Logger\.(info|_log) \(", None),
    ("response model validation", r"^(ModelField\.validate|TypeAdapter\.validate_python) \(", None),
    ("JSON serialisation", r"^(json_response|TypeAdapter\.dump_json|dumps) \(", None),
]


def start(pid: int, seconds: float, output: Path, rate: int = 250) -> subprocess.Popen[bytes]:
    """Begin sampling `pid` for `seconds`; wait on the returned process."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    command = [
        py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
        "--rate", str(rate), "--format", "raw", "--output", str(output),
    ]  # fmt: skip
    return subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def load(raw: Path) -> list[tuple[list[str], int]]:
    """Busy stacks: the event loop's and its greenlets' (idle worker threads are left out)."""
    stacks = []
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and "WorkerThread.run (anyio" not in stack:
            stacks.append((stack.split(";"), int(count)))
    return stacks


def breakdown(raw: Path) -> list[tuple[str, float]]:
    """Inclusive share of busy samples per category, largest first."""
    stacks = load(raw)
    total = sum(count for _, count in stacks) or 1
    shares: Counter[str] = Counter()
    compiled = [
        (label, re.compile(pattern), re.compile(veto) if veto else None)
        for label, pattern, veto in CATEGORIES
    ]
    for frames, count in stacks:
        for label, regex, veto in compiled:
            if any(regex.search(frame) for frame in frames) and not (
                veto and any(veto.search(frame) for frame in frames)
            ):
                shares[label] += count
    return [(label, shares[label] / total) for label, _, _ in CATEGORIES if shares[label]]


def top_self(raw: Path, limit: int = 12) -> list[tuple[str, float]]:
    """The leaf functions where samples landed, largest first."""
    stacks = load(raw)
    total = sum(count for _, count in stacks) or 1
    leaves: Counter[str] = Counter()
    for frames, count in stacks:
        leaves[re.sub(r":\d+\)$", ")", frames[-1])] += count
    return [(leaf, count / total) for leaf, count in leaves.most_common(limit)]


def describe(raw: Path) -> str:
    lines = [f"  busy samples: {sum(count for _, count in load(raw))}"]
    lines += [f"  {share:6.1%}  {label}" for label, share in breakdown(raw)]
    lines.append("  top leaf frames:")
    lines += [f"  {share:6.1%}  {leaf[-90:]}" for leaf, share in top_self(raw)]
    return "\n".join(lines)
