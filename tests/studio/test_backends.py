"""The tabs' backends on tiny models, without a browser: what each handler does with good and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_tiny_model, make_tokenizer

from hf_steer.errors import HfSteerError

gr = pytest.importorskip("gradio", reason="gradio is not installed (pip install -e '.[dev]')")

from hf_steer.studio.app import Studio, guarded, number  # noqa: E402
from hf_steer.studio.config import StudioConfig  # noqa: E402


@pytest.fixture
def studio(tmp_path):
    import torch

    torch.set_num_threads(1)
    config = StudioConfig(work_folder=str(tmp_path / "work"), memory_folder=str(tmp_path / "memory"),
                          background=False, retrieval=False, memory_every=2, chat_tokens=6)
    return Studio(config, model=make_tiny_model("llama"), tokenizer=make_tokenizer("bytelevel"))


@pytest.mark.parametrize("value, message", [
    ("abc", "θ is 'abc', not a number"), (None, "θ is None"), (True, "θ is True"),
    (float("nan"), "outside 0..1.5"), (2, "θ is 2, outside 0..1.5"), (-0.1, "outside"),
])
def test_number_refuses_what_a_client_may_send(value, message):
    with pytest.raises(HfSteerError, match=message.replace("(", r"\(").replace(")", r"\)")):
        number(value, "θ", 0, 1.5)


def test_number_accepts_numbers_and_numeric_text():
    assert number("0.25", "θ", 0, 1.5) == 0.25
    assert number(3.0, "draws", 1, 6, integer=True) == 3
    with pytest.raises(HfSteerError, match="not a whole number"):
        number(2.5, "draws", 1, 6, integer=True)


def test_guarded_turns_errors_into_one_line_on_the_page(capsys):
    @guarded
    def user_mistake():
        raise HfSteerError("adapter 'x' is not in catalog: check the name")

    @guarded
    def bug():
        raise KeyError("oops")

    @guarded
    def streaming():
        yield 1
        raise HfSteerError("prompt is empty: type something first")

    with pytest.raises(gr.Error) as info:
        user_mistake()
    assert info.value.message == "adapter 'x' is not in catalog: check the name"  # exactly the line, nothing added
    with pytest.raises(gr.Error, match=r"KeyError: 'oops' \(this is a bug; the details are in the server's log\)"):
        bug()
    assert "Traceback" in capsys.readouterr().err  # the bug's traceback goes to the server log, not the page
    gen = streaming()
    assert next(gen) == 1
    with pytest.raises(gr.Error, match="prompt is empty"):
        next(gen)


def test_drugs_theta_zero_streams_exactly_the_sober_text(studio):
    from hf_steer.studio.drugs_tab import DrugsBackend, parse_doses

    backend = DrugsBackend(studio)
    sober_doses = parse_doses([0, 0.5, 0.17] * 5)
    steps = list(backend.generate("Tell me a story.", sober_doses, 3, 12, 0))
    sober, draws = steps[-1]
    assert sober and draws == [sober] * 3
    assert len(steps) > 12  # streamed: the sober text token by token, then the draws
    dosed = parse_doses([0, 0.5, 0.17] * 4 + [1.2, 0.5, 0.5])
    sober2, draws2 = list(backend.generate("Tell me a story.", dosed, 3, 12, 0))[-1]
    assert sober2 == sober and any(d != sober for d in draws2)
    result = backend.vergence("Tell me a story.", dosed, 0)
    assert result["layers"] == 2 and max(result["divergence"]) > 0 and max(result["thetas"]["A"]) == 1.2
    with pytest.raises(HfSteerError, match="θ of A is 'x', not a number"):
        parse_doses([0, 0.5, 0.17] * 4 + ["x", 0.5, 0.5])
    with pytest.raises(HfSteerError, match="expected 15 values"):
        parse_doses([0.1])


def test_memory_backend_chat_remember_forget_regenerate(studio):
    from hf_steer.studio.memory_tab import MemoryBackend

    backend = MemoryBackend(studio)
    history, todo = backend.chat("Ana Brel lives in Oskovo.", [], [])
    assert [t["role"] for t in history] == ["user", "assistant"] and len(todo) == 1
    history, todo = backend.chat("Ana Brel has a red bicycle.", history, todo)  # memory_every=2: learned
    assert todo == [] and backend.names() == ["m001"] and "m001 switched in" in backend.status()
    row = backend.table()[0]
    assert row[:5] == ["m001", "chunk", "✓", 2, 2] and row[6] > 0  # name, kind, on, turns, facts; KB
    assert [i for _, i in backend.turns_of(["m001"])] == [0, 1]
    with pytest.raises(HfSteerError, match="no turn ticked"):
        backend.regenerate(["m001"], [])
    with pytest.raises(HfSteerError, match="turn index is 5, outside 0..1"):
        backend.regenerate(["m001"], [5])
    assert "Regenerated **m001** without turn(s) 1" in backend.regenerate(["m001"], [1])
    assert backend.memory.catalog.rows["m001"]["turns"] == [{"role": "user", "content": "Ana Brel lives in Oskovo."}]
    with pytest.raises(HfSteerError, match="adapter 'nope' is not in catalog"):
        backend.forget(["nope"])
    with pytest.raises(HfSteerError, match="no adapter selected"):
        backend.forget([])
    with pytest.raises(HfSteerError, match="nothing new to remember"):
        backend.remember([])
    assert backend.forget(["m001"]) == "Forgot m001."
    assert backend.names() == [] and backend.table() == []
    assert "Profile **work**: 0 adapter(s)." == backend.use_profile("work")
    assert backend.profiles() == ["default", "work"]
    with pytest.raises(HfSteerError, match="profile name '../x' is not allowed"):
        backend.use_profile("../x")


def test_abc_backend_three_sources_on_the_simplex(tmp_path, studio):
    from hf_steer.abcgpt.training import BUNDLED_SOURCES, TrainConfig, train
    from hf_steer.studio.abcgpt_tab import AbcBackend, on_simplex, score_line

    sources = {}
    for name in ("tinystories", "shakespeare", "names"):
        path = tmp_path / f"{name}.txt"
        path.write_text(BUNDLED_SOURCES[name].read_text(encoding="utf-8")[:4000], encoding="utf-8")
        sources[name] = str(path)
    folder = tmp_path / "abc3"
    train(TrainConfig(sources=sources, output_dir=str(folder), n_embd=16, n_layer=1, n_head=2, block_size=24,
                      batch_size=4, steps=4, log_every=2, save_every=0, eval_batches=1, warmup_steps=1))
    backend = AbcBackend(studio)
    assert "sources tinystories, shakespeare, names" in backend.load(str(folder))
    weights = on_simplex([0.5, 0.3, 0.1], moved=0)
    assert weights[0] == 0.5 and sum(weights) == pytest.approx(1) and weights[1] == pytest.approx(3 * weights[2])
    assert on_simplex([1.0, 0.0, 0.0], moved=0) == [1.0, 0.0, 0.0]
    assert on_simplex([0.4, 0.0, 0.0], moved=0) == pytest.approx([0.4, 0.3, 0.3])
    dial = backend.dial(None, weights)
    texts, score = backend.generate(dial, "\\n", 2, 10, 0.8, 0)
    assert len(texts) == 2 and set(score["shares"]) == {"tinystories", "shakespeare", "names"}
    assert "reads like:" in score_line(score, backend.names)
    assert backend.plot(dial) is not None
    with pytest.raises(HfSteerError, match="sum to 0.6, not 1"):
        backend.dial(None, [0.2, 0.2, 0.2])
    with pytest.raises(HfSteerError, match="characters is 999"):
        backend.generate(dial, "\\n", 1, 999, 0.8, 0)


def test_abc_backend_loads_an_abc_adapter_and_dials_it(tmp_path, studio):
    """An abc adapter folder (abcGPT's dial on a pretrained base) loads in the abcGPT tab like an abcGPT does."""
    import torch
    from peft import LoraConfig, get_peft_model

    from hf_steer.abcgpt.adapter import AbcAdaptConfig, train_adapter
    from hf_steer.abcgpt.training import BUNDLED_SOURCES
    from hf_steer.studio.abcgpt_tab import ADAPTER_MAX_TOKENS, AbcBackend

    base = tmp_path / "base"
    make_tiny_model("llama").save_pretrained(base)
    make_tokenizer().save_pretrained(base)
    sources = {}
    for name in ("tinystories", "shakespeare"):
        sources[name] = str(tmp_path / f"{name}.txt")
        Path(sources[name]).write_text(BUNDLED_SOURCES[name].read_text(encoding="utf-8")[:3000], encoding="utf-8")
    folder = tmp_path / "adapter"
    train_adapter(AbcAdaptConfig(sources=sources, output_dir=str(folder), base_model=str(base), r=4, layers="all",
                                 block_size=24, batch_size=4, steps=4, save_steps=0, logging_steps=2, eval_windows=2,
                                 learning_rate=1e-2, warmup_steps=1))
    backend = AbcBackend(studio)
    message = backend.load(str(folder))
    assert "Loaded the abc adapter" in message and "sources tinystories, shakespeare" in message
    assert backend.kind == "adapter" and backend.names == ["tinystories", "shakespeare"]
    ids = backend.tokenizer("Once upon a time", return_tensors="pt")["input_ids"]
    with torch.no_grad():  # the loaded dial is live: the two ends give other logits
        assert not torch.allclose(backend.model(input_ids=ids, alpha=0.0).logits, backend.model(input_ids=ids, alpha=1.0).logits)
    texts, score = backend.generate(backend.dial(1.0, []), "Once\\n", 2, 6, 0.8, 0)
    assert len(texts) == 2 and all(t.startswith("Once\n") and len(t) > len("Once\n") for t in texts)
    assert set(score["shares"]) == {"tinystories", "shakespeare"}  # the sources' texts are found from hf_steer.json
    assert backend.curves is not None and backend.plot(0.5) is not None
    with pytest.raises(HfSteerError, match=f"tokens is 999, outside 1..{ADAPTER_MAX_TOKENS}"):
        backend.generate(0.5, "Once", 1, 999, 0.8, 0)
    with pytest.raises(HfSteerError, match="α is 1.5, outside 0..1"):
        backend.dial(1.5, [])
    lora = tmp_path / "lora"  # a plain LoRA is not an abc adapter: one line naming both kinds the tab takes
    get_peft_model(make_tiny_model("llama"), LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(lora)
    with pytest.raises(HfSteerError, match="holds a LORA adapter, not an abc adapter: pass a folder written by"):
        backend.load(str(lora))
    assert backend.kind == "adapter" and backend.folder == folder  # the loaded adapter stays loaded


def test_bigram_score_tells_the_sources_apart():
    from hf_steer.abcgpt.training import BUNDLED_SOURCES
    from hf_steer.studio.abcgpt_tab import BigramScorer

    texts = {n: BUNDLED_SOURCES[n].read_text(encoding="utf-8") for n in ("tinystories", "shakespeare")}
    scorer = BigramScorer({n: t[:-2000] for n, t in texts.items()})
    story, play = scorer.score([texts["tinystories"][-600:]]), scorer.score([texts["shakespeare"][-600:]])
    assert story["score"] < 0 < play["score"]
    assert story["shares"]["tinystories"] > 0.9 and play["shares"]["shakespeare"] > 0.9


def test_elarablation_backend_bad_input_and_a_typed_context(studio, tmp_path, monkeypatch):
    from hf_steer.studio.elarablation_tab import TYPED, ElaraBackend

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf_home" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf_home" / "stored_tokens"))
    backend = ElaraBackend(studio)
    with pytest.raises(HfSteerError, match="family 'elvish' is not in the library"):
        backend.contexts("elvish", "")
    with pytest.raises(HfSteerError, match="typed context is empty"):
        backend.contexts(TYPED, "  ")
    with pytest.raises(HfSteerError, match="no adapter to push yet"):
        backend.push("me/x", "", False)
    with pytest.raises(HfSteerError, match="epochs is 'many', not a number"):
        backend.train(TYPED, "hi", "", "", "many", 1e-3, "")
    with pytest.raises(HfSteerError, match="has no adapter_config.json"):
        backend.load_adapter(str(tmp_path))
    message = backend.train(TYPED, 'The elf girl nods. "My name is', r"^ ?El", "", 1, 2e-3, str(tmp_path / "a"))
    assert "Adapter saved in" in message and (tmp_path / "a" / "adapter_config.json").is_file()
    bars = backend.bars('The elf girl nods. "My name is', 5)
    assert len(bars["base"]) == 5 and len(bars["adapter"]) == 5
    assert "Loaded adapter" in backend.load_adapter(str(tmp_path / "a"))
    table = backend.names(TYPED, 'The elf girl nods. "My name is', 8)
    assert sum(r[1] for r in table) == 8 and sum(r[2] for r in table) == 8
    with pytest.raises(gr.Error, match="not logged in to the Hugging Face Hub"):
        backend.push("me/x", "", False)


def test_abc_tab_builds_the_starter_once_and_reuses_it(studio, monkeypatch):
    from hf_steer.abcgpt import training
    from hf_steer.studio import abcgpt_tab

    # The real starter trains 600 steps; the same code path with a tiny size keeps this test fast.
    monkeypatch.setattr(abcgpt_tab, "STARTER", dict(n_embd=16, n_layer=1, n_head=2, block_size=24, batch_size=4,
                                                    steps=3, save_every=0, log_every=1, eval_batches=1))
    calls = []
    real_train = training.train
    monkeypatch.setattr(training, "train", lambda cfg, *a, **k: calls.append(cfg) or real_train(cfg, *a, **k))
    backend = abcgpt_tab.AbcBackend(studio)
    assert "sources tinystories, shakespeare" in backend.load("")
    assert backend.folder == studio.work_folder / abcgpt_tab.STARTER_NAME and len(calls) == 1
    assert not [p for p in backend.folder.parent.iterdir() if p.name.startswith(".")]  # no temp folder left
    again = abcgpt_tab.AbcBackend(studio)
    again.load("")
    assert len(calls) == 1  # cached: not trained again
    assert again.scorer is not None and again.curves is not None


def test_memory_backend_learns_in_the_background_with_a_behaviour_job(tmp_path):
    """Background training: a chunk with a fact and a request plans two jobs; both come back and switch in."""
    from hf_steer.studio.memory_tab import MemoryBackend

    folder = tmp_path / "tiny"
    model, tok = make_tiny_model("llama"), make_tokenizer("bytelevel")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    config = StudioConfig(model=str(folder), work_folder=str(tmp_path / "work"), memory_folder=str(tmp_path / "memory"),
                          background=True, retrieval=False, memory_every=0, chat_tokens=6, memory_preset="fast-cpu")
    backend = MemoryBackend(Studio(config))
    try:
        backend.remember([{"role": "user", "content": "Ana Brel lives in Oskovo. Please answer in one word."}])
        assert len(backend.jobs) == 2 and set(backend.memory.queued()) == set(backend.jobs)  # queued on disk first
        backend.wait(timeout=300)
        kinds = {r[0]: r[1] for r in backend.table()}
        assert sorted(kinds.values()) == ["behaviour", "chunk"], (kinds, backend.events)
        assert backend.jobs == {} and backend.memory.queued() == {}
    finally:
        backend.close()
