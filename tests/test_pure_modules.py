"""The modules docs/architecture.md calls pure import neither torch nor matplotlib (checked in a fresh process,
so an import made by another test cannot hide one)."""

import subprocess
import sys

PURE = ("vocabulary", "errors", "schema", "rules", "transfer", "methods", "sweep.stats", "sweep.fit", "sweep.fit_paths",
        "tune.halving", "tune.selection", "tune.edges")


def test_pure_modules_import_neither_torch_nor_matplotlib():
    code = ("import importlib, sys\n"
            f"for m in {PURE!r}:\n"
            "    importlib.import_module('lorascale.' + m)\n"
            "heavy = sorted(k for k in ('torch', 'matplotlib') if k in sys.modules)\n"
            "print(','.join(heavy))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"a pure module imported {out}"
