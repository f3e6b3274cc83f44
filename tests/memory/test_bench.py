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
    result = run_bench(out, model=str(folder), facts=3, steps=TINY["steps"], r=TINY["r"], top_layers=TINY["top_layers"],
                       retrieval=False, max_new_tokens=4, rollups=["cat", "retrain"],
                       parts=["encyclopedia", "conversation", "conversation_heldout"], log=lambda *_: None)
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(result))
    for key in ("seconds_per_chunk_median", "base_recall", "encyclopedia_adapters_only_recall", "encyclopedia_all_active_recall",
                "kl_heldout_nats_all_active", "recall_after_stack", "recall_after_rollup_cat",
                "recall_after_rollup_retrain", "forgotten_recall", "others_after_forget",
                "conversation_adapters_only_recall", "conversation_adapters_only_recall_first_person",
                "conversation_adapters_only_recall_assistant", "conversation_adapters_only_correction_newest",
                "conversation_adapters_only_correction_superseded", "conversation_heldout_adapters_only_recall",
                "conversation_locality"):
        assert key in saved, key
    assert len(saved["recall_after_stack"]) == 3 and saved["n_chunks"] == 3
    # the conversation chunks are the timed 4-turn chunks: 8 dev + 6 held-out
    assert len(saved["seconds_per_chunk_each"]) == 14
    assert saved["rollup_cat_rank"] == 3 * TINY["r"] and saved["rollup_retrain_train_seconds"] > 0
    assert all(0.0 <= saved[k] <= 1.0 for k in ("encyclopedia_adapters_only_recall", "conversation_locality"))
    assert out.with_suffix(".png").stat().st_size > 1000 and saved["plot"] == "bench.png"
    assert saved["machine"]["cpus"] and "load_average" in saved["machine"] and "partial" not in saved
