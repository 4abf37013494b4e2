"""scripts/install_e2e_deps.sh: installs only what is missing of what was asked for (make e2e asks
for all three, make run STORAGE_ENGINE=influxdb for influxdb alone). Run with stand-ins for
apt-get, sudo and id on PATH, so the tests never install anything or touch the system."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install_e2e_deps.sh"


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """apt-get and sudo that only log their arguments (and fail), id that says "not root", and
    executables standing in for the three binaries."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    for name in ("apt-get", "sudo"):
        (bin_dir / name).write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\nexit 1\n')
    (bin_dir / "id").write_text('#!/bin/sh\necho 1000\n')
    for name in ("prometheus", "vmagent", "influxd"):
        (bin_dir / name).write_text(f'#!/bin/sh\necho "{name} stand-in"\n')
    for path in bin_dir.iterdir():
        path.chmod(0o755)
    return bin_dir


def run(fake_bin: Path, *args: str, **binaries: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}",
           "PROMETHEUS_BIN": str(fake_bin / "prometheus"), "VMAGENT_BIN": str(fake_bin / "vmagent"),
           "INFLUXD_BIN": str(fake_bin / "influxd"), **binaries}
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)


def calls(fake_bin: Path) -> str:
    log = fake_bin.parent / "calls.log"
    return log.read_text() if log.exists() else ""


def test_with_everything_present_it_installs_nothing_and_prints_the_versions(fake_bin: Path) -> None:
    result = run(fake_bin)
    assert result.returncode == 0, result.stderr
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == ["prometheus", "vmagent", "influxd"]
    assert calls(fake_bin) == ""


def test_asked_for_influxdb_alone_it_ignores_a_missing_prometheus(fake_bin: Path) -> None:
    result = run(fake_bin, "influxdb", PROMETHEUS_BIN="/nonexistent/prometheus", VMAGENT_BIN="/nonexistent/vmagent")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "influxd: influxd stand-in\n"
    assert calls(fake_bin) == ""


def test_a_missing_influxd_is_installed_alone_with_sudo(fake_bin: Path) -> None:
    result = run(fake_bin, "influxdb", INFLUXD_BIN="/nonexistent/influxd", PROMETHEUS_BIN="/nonexistent/prometheus")
    assert "installing influxdb" in result.stdout and "prometheus" not in result.stdout
    assert calls(fake_bin).startswith("sudo apt-get update")  # not root: through sudo
    assert result.returncode != 0  # the stand-in sudo fails, and the script stops there


def test_an_unknown_name_is_refused(fake_bin: Path) -> None:
    result = run(fake_bin, "grafana")
    assert result.returncode == 2
    assert "unknown 'grafana'" in result.stderr
