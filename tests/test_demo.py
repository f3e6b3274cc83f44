"""`hf-steer demo`: the before/after story runs end to end (tiny model here; the bundled one in `make demo`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import make_tiny_model, make_tokenizer  # noqa: E402

from hf_steer.cli import main  # noqa: E402
from hf_steer.elarablation.sampling import first_name  # noqa: E402


def test_first_name():
    assert first_name(' Elara," she said') == "Elara"
    assert first_name(" the one\nBob") is None


def test_demo_tells_the_whole_story(tmp_path, capsys):
    folder = tmp_path / "tiny"
    make_tiny_model("llama").save_pretrained(folder)
    make_tokenizer("bytelevel").save_pretrained(folder)
    out = tmp_path / "demo"
    assert main(["demo", "--model", str(folder), "--epochs", "1", "--samples", "4", "--output-dir", str(out)]) == 0
    text = capsys.readouterr().out
    for marker in ("BEFORE: top-10 next tokens", "sampled names", "Elarablation: 8 contexts", "AFTER: top-10",
                   "adapter saved in", "before_after.png"):
        assert marker in text
    assert (out / "adapter_model.safetensors").is_file() and (out / "hf_steer.json").is_file()
    assert (out / "before_after.png").stat().st_size > 10_000
