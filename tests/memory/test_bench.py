"""The memory bench end to end on a tiny model saved to disk: every figure the issue names is written."""

from __future__ import annotations

import json

from conftest import make_tiny_model, make_tokenizer

from hf_steer.memory.bench import run_bench

from .conftest import TINY


def test_bench_writes_every_figure(tmp_path):
    folder = tmp_path / "tiny"
    make_tiny_model("llama").save_pretrained(folder)
    make_tokenizer("bytelevel").save_pretrained(folder)
    out = tmp_path / "bench.json"
    result = run_bench(out, model=str(folder), facts=3, facts_per_chunk=1, steps=TINY["steps"], r=TINY["r"],
                       top_layers=TINY["top_layers"], retrieval=False, max_new_tokens=4, log=lambda *_: None)
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(result))
    for key in ("seconds_per_chunk", "base_recall", "recall", "locality", "kl_heldout_nats", "recall_after_stack",
                "recall_after_rollup_cat", "recall_after_rollup_svd", "recall_after_rollup_ties",
                "recall_after_rollup_retrain", "forgotten_recall", "others_after_forget"):
        assert key in saved, key
    assert len(saved["recall_after_stack"]) == 3 and saved["n_chunks"] == 3
    assert saved["rollup_cat_rank"] == 3 * TINY["r"] and saved["rollup_retrain_train_seconds"] > 0
    assert all(0.0 <= saved[k] <= 1.0 for k in ("recall", "locality", "forgotten_recall"))
    assert out.with_suffix(".png").stat().st_size > 1000 and saved["plot"] == "bench.png"
    assert saved["machine"]["cpus"] and "load_average" in saved["machine"] and "partial" not in saved
