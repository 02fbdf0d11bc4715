"""Start a local anvil node (npm package ``@foundry-rs/anvil``) for tests and benchmarks."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ._errors import ChainUnavailable

_REPO = Path(__file__).resolve().parent.parent


def find_anvil() -> Path | None:
    """The anvil binary: ``$AXL_ANVIL``, node_modules' platform package, or ``anvil`` on PATH."""
    env = os.environ.get("AXL_ANVIL")
    if env:
        return Path(env) if Path(env).is_file() else None
    for candidate in sorted((_REPO / "node_modules" / "@foundry-rs").glob("anvil-*/bin/anvil")):
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("anvil")
    return Path(found) if found else None


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def anvil_node(
    *, optimism: bool = True, timeout: float = 20.0, host: str = "127.0.0.1"
) -> Iterator[str]:
    """Run anvil on ``host`` (an address of this machine) at a free port (OP Stack mode by
    default); yields its URL and kills it on exit. Raises :class:`ChainUnavailable` when anvil
    is absent or does not start."""
    binary = find_anvil()
    if binary is None:
        raise ChainUnavailable("anvil not found: run `npm ci` (package @foundry-rs/anvil)")
    port = _free_port(host)
    args = [str(binary), "--host", host, "--port", str(port), "--quiet"]
    if optimism:
        args.append("--optimism")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise ChainUnavailable(f"anvil exited with {proc.returncode}: {err.strip()}")
            try:
                with socket.create_connection((host, port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise ChainUnavailable(
                        f"anvil did not listen on {port} in {timeout}s"
                    ) from None
                time.sleep(0.05)
        yield f"http://{host}:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
