"""The one figure helper: object API on an Agg canvas, no process-wide matplotlib state."""

import os
import re
import subprocess
import sys
from pathlib import Path

from lorascale.figures import DPI, colormap, new_figure, save_figure

SRC = Path(__file__).resolve().parents[1] / "src" / "lorascale"


def test_new_figure_gives_a_2d_grid_of_panels_of_the_asked_size():
    fig, axes = new_figure(2, 3, width=4.0, height=3.0)
    assert axes.shape == (2, 3)
    assert tuple(fig.get_size_inches()) == (12.0, 6.0)  # per-panel size × the grid
    _, one = new_figure()
    assert one.shape == (1, 1)


def test_save_figure_writes_a_png_into_a_new_folder(tmp_path):
    fig, ((ax,),) = new_figure()
    ax.plot([0, 1], [1, 0], color=colormap("viridis")(0.5))
    out = save_figure(fig, tmp_path / "a" / "b" / "line.png")
    assert out == tmp_path / "a" / "b" / "line.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert DPI == 120


def test_rendering_leaves_the_process_backend_alone():
    """A notebook's backend must survive our figures: no backend switch, no global figure manager."""
    code = (
        "import sys, tempfile, matplotlib\n"
        "matplotlib.rcParams['backend'] = 'svg'\n"  # stands in for a user's choice
        "from lorascale.figures import new_figure, save_figure\n"
        "fig, ((ax,),) = new_figure(); ax.plot([0, 1])\n"
        "save_figure(fig, tempfile.mkdtemp() + '/x.png')\n"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(SRC.parent)}, timeout=120)


def test_no_module_switches_the_backend_or_uses_the_stateful_api():
    pattern = re.compile(r"matplotlib\.use|pyplot")
    offenders = [f"{p.relative_to(SRC)}:{i}" for p in SRC.rglob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []
