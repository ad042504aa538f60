"""The package's layer rules (setup.cfg [importlinter], docs/architecture.md) hold: no import
circles between packages, and a lower layer never imports a higher one. And the package passes
mypy --strict (setup.cfg [mypy]; modules not yet clean are listed there one by one)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--config", str(ROOT / "setup.cfg")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ", 0 broken." in proc.stdout, proc.stdout


def test_package_is_strictly_typed():
    # setup.cfg [mypy]: strict, with the modules not yet clean listed there one by one
    proc = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "setup.cfg")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("Success: no issues found"), proc.stdout
