"""The shared plot helpers write a real PNG into a folder they create."""

from hf_steer.plotting import pyplot, save_figure


def test_save_figure_creates_folder_and_png(tmp_path):
    fig, ax = pyplot().subplots()
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "new" / "plot.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not pyplot().get_fignums()  # closed, so long runs do not pile up figures
