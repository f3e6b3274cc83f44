"""`hf-steer studio` from the command line: flags, bad input, a real server answering, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from hf_steer.cli import build_parser, main

from .conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_the_flags_from_the_config(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["studio", "--help"])
    out = capsys.readouterr().out
    for flag in ("--model", "--host", "--port", "--memory-folder", "--profile", "--abc-folder", "--no-background"):
        assert flag in out
    args = build_parser().parse_args(["studio"])
    assert (args.host, args.port, args.background) == ("127.0.0.1", 7860, True)


def test_the_cli_does_not_import_gradio_or_torch_for_help():
    # `import hf_steer` itself brings torch (load_model); the studio's CLI must add neither gradio nor torch.
    code = ("import sys, argparse, hf_steer; before = set(sys.modules); import hf_steer.studio.cli as c;"
            " c.register(argparse.ArgumentParser().add_subparsers());"
            " print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in ('gradio', 'torch')),"
            " 'gradio' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[] False"


def test_bad_flags_give_one_line(capsys):
    assert main(["studio", "--port", "70000"]) == 2
    assert capsys.readouterr().err.strip() == "hf-steer: error: port 70000 is not a TCP port: use 0..65535 (0 picks a free one)"
    assert main(["studio", "--threads", "0"]) == 2
    assert "threads 0 is not a count >= 1" in capsys.readouterr().err


def test_the_command_serves_the_page_and_stops_on_ctrl_c(tiny_folder, tmp_path):
    pytest.importorskip("gradio", reason="gradio is not installed (pip install -e '.[dev]')")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    log = open(tmp_path / "studio.log", "w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "hf_steer.cli", "studio", "--model", str(tiny_folder), "--port", str(port),
         "--work-folder", str(tmp_path / "work"), "--memory-folder", str(tmp_path / "memory"), "--no-background",
         "--no-retrieval", "--threads", "1"], env=env, stdout=log, stderr=subprocess.STDOUT,
        # As from a terminal: Ctrl-C delivered. Some library earlier in the suite leaves SIGINT ignored in
        # the test process, and an ignored signal stays ignored across exec (the server never saw it).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline, page = time.time() + 300, None
        while time.time() < deadline and process.poll() is None and page is None:
            log.seek(0)
            if "hf-steer studio on" not in log.read():  # the URL is printed once the server is up
                time.sleep(0.5)
                continue
            page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read().decode()
        assert page is not None and "hf-steer studio" in page
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log.seek(0)
    text = log.read()
    assert f"hf-steer studio on http://127.0.0.1:{port}/" in text and "Traceback" not in text
