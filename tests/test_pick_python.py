"""``scripts/pick_python.sh``: which interpreter ``make setup`` builds ``.venv`` from."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pick_python.sh"


def _fake_python(folder: Path, name: str, *, makes_venvs: bool) -> Path:
    """An executable standing in for an interpreter: it answers the script's probe
    (``-c 'import ensurepip, venv'``) with success or failure."""
    path = folder / name
    path.write_text(f"#!/bin/sh\nexit {0 if makes_venvs else 1}\n")
    path.chmod(0o755)
    return path


def _pick(*candidates: Path | str) -> str:
    env = {"PATH": "/usr/bin:/bin", "AXL_PYTHON_CANDIDATES": " ".join(map(str, candidates))}
    done = subprocess.run(
        ["sh", str(SCRIPT)], env=env, capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.strip()


def test_the_first_candidate_that_can_make_a_virtual_environment_is_picked(
    tmp_path: Path,
) -> None:
    distro = _fake_python(tmp_path, "distro", makes_venvs=True)
    other = _fake_python(tmp_path, "other", makes_venvs=True)
    assert _pick(distro, other) == str(distro)


def test_a_candidate_without_venv_is_passed_over(tmp_path: Path) -> None:
    # Debian's python3.11 without the python3.11-venv package
    distro = _fake_python(tmp_path, "distro", makes_venvs=False)
    other = _fake_python(tmp_path, "other", makes_venvs=True)
    assert _pick(distro, other) == str(other)


def test_missing_candidates_fall_back_to_python3_11_on_path(tmp_path: Path) -> None:
    broken = _fake_python(tmp_path, "broken", makes_venvs=False)
    assert _pick(tmp_path / "absent", broken) == "python3.11"
