"""LoraMemory on a tiny random Llama: isolation during training, exact stacking, roll-ups, forget, errors."""

from __future__ import annotations

import pytest
import torch

from hf_steer.errors import HfSteerError
from hf_steer.memory import LoraMemory, learn
from hf_steer.memory import augment as aug
from hf_steer.memory import memory as memory_mod
from hf_steer.memory.train import get_preset

from .conftest import CHUNK_A, CHUNK_B, CHUNK_C, TINY, fake_embedder


def _logits(mem, text="Veltra Quosh was born in Marbelin."):
    ids = mem.tokenizer(text, return_tensors="pt")["input_ids"]
    model = mem.peft if mem.peft is not None else mem.model
    with torch.no_grad():
        return model(input_ids=ids).logits


def _bigger(mem, names):
    """Scale B up so the adapters' effect is far above float noise (tiny runs barely move weights)."""
    for n in names:
        for module in mem.peft.modules():
            if hasattr(module, "lora_B") and n in module.lora_B:
                torch.nn.init.normal_(module.lora_B[n].weight, std=0.5)


def test_remember_trains_the_new_adapter_alone(memory, monkeypatch):
    memory.remember(CHUNK_A, name="ma")
    seen = {}
    real = learn.train_adapter

    def spy(model, tok, name, examples, preset, seed=0):
        seen["active"] = list(model.base_model.active_adapters)
        seen["trainable"] = sorted({n.split(".")[-2] for n, p in model.named_parameters() if p.requires_grad})
        return real(model, tok, name, examples, preset, seed)

    monkeypatch.setattr(learn, "train_adapter", spy)
    before = {n: p.clone() for n, p in memory.peft.named_parameters() if ".ma." in n}
    row = memory.remember(CHUNK_B, name="mb")
    assert seen == {"active": ["mb"], "trainable": ["mb"]}
    assert all(torch.equal(p, before[n]) for n, p in memory.peft.named_parameters() if ".ma." in n)
    assert memory.active == ["ma", "mb"]
    # catalog row + safetensors folder + metadata
    assert row["kind"] == "chunk" and row["tokens"] > 0 and row["probes"] and len(row["embedding"]) == 64
    assert row["turns"] == CHUNK_B and row["statements"] == ["Doran Pellick works as a lighthouse keeper in Tessomund."]
    folder = memory.catalog.adapter_dir("mb")
    assert {p.name for p in folder.iterdir()} >= {"adapter_model.safetensors", "adapter_config.json", "hf_steer.json"}


def test_stacking_is_the_exact_sum_of_deltas(memory):
    memory.remember(CHUNK_A, name="ma")
    memory.remember(CHUNK_B, name="mb")
    _bigger(memory, ["ma", "mb"])
    layer = next(m for n, m in memory.peft.named_modules() if n.endswith("layers.1.mlp.down_proj"))
    x = torch.randn(3, layer.in_features)
    with torch.no_grad():
        base = layer.base_layer(x)
        outs = {}
        for active in (["ma"], ["mb"], ["ma", "mb"]):
            memory.stack(active)
            outs[tuple(active)] = layer(x)
    delta_sum = (outs[("ma",)] - base) + (outs[("mb",)] - base)
    assert (outs[("ma",)] - base).abs().max() > 1e-2
    torch.testing.assert_close(outs[("ma", "mb")] - base, delta_sum, rtol=1e-5, atol=1e-6)


def test_rollup_cat_equals_the_stack_under_a_fresh_name(memory):
    for n, c in zip(("ma", "mb", "mc"), (CHUNK_A, CHUNK_B, CHUNK_C)):
        memory.remember(c, name=n)
    _bigger(memory, ["ma", "mb", "mc"])
    stacked = _logits(memory)
    row = memory.rollup(["ma", "mb", "mc"], method="cat", name="r1")
    assert row["members"] == ["ma", "mb", "mc"] and row["r"] == 3 * TINY["r"]
    assert memory.active == ["r1"]
    torch.testing.assert_close(_logits(memory), stacked, rtol=1e-4, atol=1e-5)
    with pytest.raises(HfSteerError, match="'r1' already exists: roll-ups need a fresh name"):
        memory.rollup(["ma", "mb"], name="r1")
    svd = memory.rollup(["ma", "mb"], method="svd", svd_rank=2)
    assert svd["name"] not in ("r1", "ma", "mb") and svd["r"] == 2


@pytest.mark.parametrize("method", ["ties", "dare_ties"])
def test_ties_rollups_build_a_new_adapter_that_moves_the_output(memory, method):
    for n, c in zip(("ma", "mb"), (CHUNK_A, CHUNK_B)):
        memory.remember(c, name=n)
    _bigger(memory, ["ma", "mb"])
    with memory.base_only():
        base = _logits(memory)
    row = memory.rollup(["ma", "mb"], method=method, density=0.5)
    assert memory.active == [row["name"]] and row["method"] == method and row["density"] == 0.5
    assert (_logits(memory) - base).abs().max() > 1e-3  # the roll-up is not an empty adapter


def test_retrain_rollup_trains_one_adapter_on_all_members_turns(memory, monkeypatch):
    import hf_steer.memory.learn as memory_mod

    for n, c in zip(("ma", "mb", "mc"), (CHUNK_A, CHUNK_B, CHUNK_C)):
        memory.remember(c, name=n)
    seen = []
    real = memory_mod.train_adapter

    def spy(model, tok, name, examples, preset, seed=0):
        seen.append((name, [t for _, t in examples], list(model.base_model.active_adapters)))
        return real(model, tok, name, examples, preset, seed=seed)

    monkeypatch.setattr(memory_mod, "train_adapter", spy)
    row = memory.rollup(["ma", "mb", "mc"], method="retrain", name="r1")
    name, targets, active = seen[-1]
    assert name == "r1" and active == ["r1"]  # trained alone, like a chunk adapter
    for fact in ("Marbelin", "lighthouse", "1873"):
        assert any(fact in t for t in targets)  # every member's turns are in its training text
    assert row["method"] == "retrain" and row["train"]["steps"] == TINY["steps"] and memory.active == ["r1"]
    with pytest.raises(HfSteerError, match="'retrain' takes no weights"):
        memory.rollup(["ma", "mb"], method="retrain", weights=[0.5, 0.5])
    # forgetting a member retrains the roll-up on the survivors' turns only
    memory.forget("mb")
    name, targets, _ = seen[-1]
    assert name == "r1" and not any("lighthouse" in t for t in targets)
    assert memory.catalog.rows["r1"]["members"] == ["ma", "mc"]


def test_retrain_rollup_gives_each_member_its_own_number_of_updates(memory):
    from hf_steer.memory.train import get_preset

    memory.preset = get_preset(memory.preset, batch_size=2)  # mini-batches: steps are counted, not passes
    for n, c in zip(("ma", "mb", "mc"), (CHUNK_A, CHUNK_B, CHUNK_C)):
        memory.remember(c, name=n)
    assert memory.rollup(["ma", "mb", "mc"], method="retrain")["train"]["steps"] == 3 * TINY["steps"]


def test_forget_rebuilds_rollups_from_survivors(memory):
    for n, c in zip(("ma", "mb", "mc"), (CHUNK_A, CHUNK_B, CHUNK_C)):
        memory.remember(c, name=n)
    _bigger(memory, ["ma", "mb", "mc"])
    memory.rollup(["ma", "mb", "mc"], method="cat", name="r1")
    result = memory.forget("mb")
    assert result == {"forgotten": "mb", "rebuilt": ["r1"], "dropped": [], "copies_left": []}
    assert "mb" not in memory.catalog and "mb" not in memory.peft.peft_config
    assert not memory.catalog.adapter_dir("mb").exists()
    assert memory.catalog.rows["r1"]["members"] == ["ma", "mc"]
    assert all(r["name"] != "mb" for r in memory.retrieve("Doran Pellick lighthouse", k=5))
    rebuilt = _logits(memory)
    memory.stack(["ma", "mc"])
    torch.testing.assert_close(rebuilt, _logits(memory), rtol=1e-4, atol=1e-5)
    # forgetting every member removes the roll-up too, and the last adapter returns the bare base
    memory.forget("ma")
    memory.forget("mc")
    assert memory.names() == [] and memory.peft is None


def test_reload_from_disk_gives_the_same_outputs(memory, tiny_pair):
    memory.remember(CHUNK_A, name="ma")
    memory.remember(CHUNK_B, name="mb")
    _bigger(memory, ["ma", "mb"])
    for n in ("ma", "mb"):
        files = memory._files(n, memory.catalog.rows[n])
        memory.catalog.write_adapter(n, lambda t, f=files: learn.write_adapter_files(t, f))
    expected = _logits(memory)
    from conftest import make_tiny_model

    again = LoraMemory(make_tiny_model("llama"), memory.tokenizer, base_model="tiny-llama",
                       folder=memory.folder, embedder=fake_embedder)
    assert again.names() == ["ma", "mb"] and again.active == ["ma", "mb"]
    torch.testing.assert_close(_logits(again), expected, rtol=1e-4, atol=1e-5)


def test_profiles_are_separate_catalogs(memory):
    memory.remember(CHUNK_A, name="ma")
    memory.use_profile("work")
    assert memory.names() == [] and memory.peft is None
    memory.remember(CHUNK_B, name="w1")
    memory.use_profile("default")
    assert memory.names() == ["ma"] and memory.active == ["ma"]


def test_regenerate_without_a_turn(memory):
    memory.remember(CHUNK_C, name="mc")
    row = memory.regenerate("mc", without=["Saffi"])
    assert row["statements"] == ["The Glimmerfen Bridge was finished in 1873."]
    assert memory.active == ["mc"] and "mc" in memory.peft.peft_config


def test_retrieval_finds_the_right_chunk(memory):
    memory.remember(CHUNK_A, name="ma")
    memory.remember(CHUNK_B, name="mb")
    assert memory.retrieve("Where does Doran Pellick work?", k=1)[0]["name"] == "mb"
    answers = memory.ask_many(["Where was Veltra Quosh born?"], retrieve=True, k=1, max_new_tokens=3)
    assert len(answers) == 1 and isinstance(answers[0], str)


# -- bad inputs: one clear line each ------------------------------------------------------------


def _one_line(excinfo):
    assert "\n" not in str(excinfo.value)


def test_duplicate_adapter_name(memory):
    memory.remember(CHUNK_A, name="ma")
    with pytest.raises(HfSteerError, match="adapter name 'ma' already exists") as e:
        memory.remember(CHUNK_B, name="ma")
    _one_line(e)


def test_unknown_names(memory):
    memory.remember(CHUNK_A, name="ma")
    with pytest.raises(HfSteerError, match="adapter 'zz' is not in catalog") as e:
        memory.forget("zz")
    _one_line(e)
    with pytest.raises(HfSteerError, match="adapter 'zz' is not in catalog"):
        memory.rollup(["ma", "zz"])
    with pytest.raises(HfSteerError, match="adapter 'zz' is not in catalog"):
        memory.stack(["zz"])
    with pytest.raises(HfSteerError, match="roll-up method 'mean' is unknown"):
        memory.rollup(["ma"], method="mean")


def test_empty_chunk_trains_nothing(memory):
    with pytest.raises(HfSteerError, match="chunk is empty") as e:
        memory.remember("   ")
    _one_line(e)
    assert memory.names() == [] and memory.peft is None


def test_rollup_of_different_target_modules(memory):
    memory.remember(CHUNK_A, name="ma")
    memory.remember(CHUNK_B, name="mb", target_modules=["q_proj", "v_proj"])
    with pytest.raises(HfSteerError, match=r"target different modules/layers") as e:
        memory.rollup(["ma", "mb"])
    _one_line(e)


def test_rollup_of_different_bases(memory):
    memory.remember(CHUNK_A, name="ma")
    memory.remember(CHUNK_B, name="mb")
    memory.catalog.rows["mb"]["base_fingerprint"] = "llama-other"
    with pytest.raises(HfSteerError, match="trained on different base models") as e:
        memory.rollup(["ma", "mb"])
    _one_line(e)


def test_catalog_from_another_base(memory):
    memory.remember(CHUNK_A, name="ma")
    from conftest import make_tiny_model

    with pytest.raises(HfSteerError, match="belongs to base model") as e:
        LoraMemory(make_tiny_model("llama", seed=1), memory.tokenizer, base_model="other", folder=memory.folder, embedder=None)
    _one_line(e)


# 64 wide (one quantization block) and multiples of 32: shapes every bitsandbytes CPU kernel accepts.
SHAPES_4BIT = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2)


def test_merge_into_4bit_is_refused_but_16bit_copy_works(tmp_path, tiny_pair):
    from conftest import make_tiny_model

    model, tok = make_tiny_model("llama", **SHAPES_4BIT), tiny_pair[1]
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    mem = LoraMemory(base_model=str(tmp_path / "tiny"), load_in_4bit=True, device="cpu", folder=tmp_path / "mem",
                     preset=get_preset("fast-cpu", **{**TINY, "target_modules": ["q_proj", "v_proj"]}), embedder=None)
    assert mem.quantized
    mem.remember(CHUNK_A, name="ma")
    with pytest.raises(HfSteerError, match="base model is 4-bit: merging would re-quantize") as e:
        mem.merge_in_place()
    _one_line(e)
    out = mem.save_merged(tmp_path / "merged", dtype="float32")["folder"]
    from hf_steer.models import load_model

    merged = load_model(str(out), with_tokenizer=False)
    assert not memory_mod.is_4bit(merged)
    assert (out / "hf_steer.json").is_file()
    # the merged copy equals the fp32 base + the adapter
    from peft import PeftModel

    ref = PeftModel.from_pretrained(load_model(str(tmp_path / "tiny"), with_tokenizer=False),
                                    str(mem.catalog.adapter_dir("ma")), adapter_name="ma")
    ids = tok("Veltra Quosh", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, ref(ids).logits, rtol=1e-4, atol=1e-4)


def test_routing_activates_only_matching_adapters(memory):
    memory.remember(CHUNK_A, name="ma")
    memory.remember(CHUNK_B, name="mb")
    _bigger(memory, ["ma", "mb"])
    memory.route_threshold = 0.3
    assert memory.route("Where was Veltra Quosh born in the town of Marbelin?") == ["ma"]
    assert memory.route("lighthouse keeper Doran Pellick") == ["mb"]
    assert memory.route("zzz qqq") == []
    # an unrelated question is answered by the bare base; the whole stack answers differently
    base = memory.ask_many(["zzz qqq"], adapters=False, max_new_tokens=5)
    assert memory.ask_many(["zzz qqq"], max_new_tokens=5) == base
    assert memory.active == ["ma", "mb"]  # routing never changes the stack itself


def test_answers_after_forgetting_the_first_adapter(memory):
    """PeftModel remembers its first adapter's name for generate(); forgetting it must not break asking."""
    memory.remember(CHUNK_A, name="ma")
    memory.remember(CHUNK_B, name="mb")
    base = memory.ask_many(["Doran Pellick"], adapters=False, max_new_tokens=3)
    memory.forget("ma")
    assert memory.ask_many(["Doran Pellick"], adapters=False, max_new_tokens=3) == base
    assert len(memory.ask_many(["Doran Pellick"], route=False, max_new_tokens=3)) == 1


def test_merge_takes_a_rollup_instead_of_its_members_and_records_the_hub_id(tmp_path, tiny_pair):
    from hf_steer.artifacts import BUNDLED_HUB_ID, Artifact

    model, tok = tiny_pair
    folder = tmp_path / "SmolLM2-135M-Instruct-v1-123"  # named like the bundled model's cache folder
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    mem = LoraMemory(model, tok, base_model=str(folder), folder=tmp_path / "mem", preset=get_preset("fast-cpu", **TINY),
                     embedder=fake_embedder)
    mem.remember(CHUNK_A, name="ma")
    mem.remember(CHUNK_B, name="mb")
    mem.rollup(["ma", "mb"], method="cat", name="r1", check=False)
    mem.stack(["ma", "mb", "r1"])  # a roll-up together with its own members: the facts would go in twice
    res = mem.save_merged(tmp_path / "merged", dtype="float32")
    assert res["adapters"] == ["r1"] and res["left_out"] == ["ma", "mb"]
    assert any("instead of their members ma, mb" in n for n in res["notes"])
    assert res["recall_check"]["questions"] == 2 and set(res["recall_check"]) >= {"members", "merged", "warning"}
    art = Artifact.load(tmp_path / "merged")
    assert art.base_model == BUNDLED_HUB_ID and art.hyperparameters["adapters"] == ["r1"]
    assert mem.catalog.merges[-1]["chunks"] == ["ma", "mb"]
    # two separate chunk adapters merged: routing is lost, and the memory says so
    mem.forget("r1")
    res = mem.save_merged(tmp_path / "merged2", dtype="float32", names=["ma", "mb"], check=False)
    assert any("routing has no meaning in merged weights" in n for n in res["notes"])


def test_rollup_warns_with_the_measured_recall_when_it_loses_what_members_knew(memory, monkeypatch):
    memory.remember(CHUNK_A, name="ma")
    memory.remember(CHUNK_B, name="mb")
    probes = {p["question"]: p["expected"] for n in ("ma", "mb") for p in memory.catalog.rows[n]["probes"]}
    real = LoraMemory.answer_many

    def answers(self, questions, **kw):  # members alone know their facts; a cat roll-up of them does not
        out = real(self, questions, **kw)
        knows = kw.get("use") in (["ma"], ["mb"])
        return [{**o, "answer": probes[q] if knows else "no idea"} for o, q in zip(out, questions)]

    monkeypatch.setattr(LoraMemory, "answer_many", answers)
    row = memory.rollup(["ma", "mb"], method="cat", name="r1")
    check = row["recall_check"]
    assert check["members"] == 1.0 and check["rollup"] == 0.0 and check["questions"] == 2
    assert check["warning"].startswith("the rollup answers 0/2 probe questions of its chunks (0.00) where the chunk "
                                       "adapters alone answer 2 (1.00)")
    assert memory.catalog.rows["r1"]["recall_check"] == check  # kept in the catalog


def test_a_users_own_4bit_model_is_kept_off_the_packed_cpu_path(tmp_path, tiny_pair, monkeypatch):
    """Pretend the CPU has AVX512-BF16: a 4-bit model passed in must still train and answer on the plain path."""
    import bitsandbytes as bnb
    from conftest import make_tiny_model

    from hf_steer.models import load_model

    monkeypatch.setattr(bnb.nn.modules, "has_avx512bf16", lambda: True)
    tok = tiny_pair[1]
    make_tiny_model("llama", **SHAPES_4BIT).save_pretrained(tmp_path / "tiny")
    quantized = load_model(tmp_path / "tiny", load_in_4bit=True, device="cpu", with_tokenizer=False)
    layers = [m for m in quantized.modules() if isinstance(m, bnb.nn.Linear4bit)]
    for m in layers:  # as a model quantized outside hf_steer would be
        m.support_avx512bf16_for_cpu = True
    mem = LoraMemory(quantized, tok, base_model="tiny4", folder=tmp_path / "mem", embedder=None,
                     preset=get_preset("fast-cpu", **TINY))
    assert mem.quantized and not any(m.support_avx512bf16_for_cpu for m in layers)
    row = mem.remember(CHUNK_A, name="ma")
    assert row["train"]["last_loss"] == row["train"]["last_loss"]  # trained without the packed path's crash
    assert len(mem.ask_many(["Where was Veltra Quosh born?"], max_new_tokens=3)) == 1


def test_asking_leaves_the_callers_tokenizer_padding_side_alone(memory):
    memory.tokenizer.padding_side = "right"
    memory.remember(CHUNK_A, name="ma")
    memory.ask_many(["Where was Veltra Quosh born?", "Who is the lighthouse keeper of Tessomund?"], max_new_tokens=3)
    assert memory.tokenizer.padding_side == "right"


def test_a_question_about_the_user_gets_weaker_matching_notes(tiny_pair, tmp_path):
    from hf_steer.memory import LoraMemory
    from hf_steer.memory.train import get_preset

    from .conftest import TINY, fake_embedder

    model, tok = tiny_pair
    mem = LoraMemory(model, tok, base_model="tiny-llama", folder=tmp_path / "mem", preset=get_preset("fast-cpu", **TINY),
                     embedder=fake_embedder, note_threshold=0.99, personal_note_threshold=0.1)
    mem.remember([{"role": "user", "content": "My sister Tilda lives in Brackwell."}])
    assert mem.retrieve_statements("Where does my sister live?") == ["Your sister Tilda lives in Brackwell."]
    assert mem.retrieve_statements("Where does the sister live?") == []  # not about the user: the strict threshold


def test_an_answer_that_recites_the_wrong_statement_gets_the_best_note(memory, monkeypatch):
    """The default path's last step (retrieval.best_recitation), wired into answer_many and chat."""
    memory.remember(["Ana Brel lives in Oskovo.", "Tomas Vek plays the cello in Varnby."])
    said = []
    monkeypatch.setattr(memory, "_generate", lambda prompts, *a, **k: [said[0]] * len(prompts))
    said.append("Tomas Vek plays the cello in Varnby.")  # what a confused chunk adapter does
    res = memory.answer("Ana Brel lives where?")
    assert res["answer"] == "Ana Brel lives in Oskovo." and res["recited"] == said[0]
    assert memory.answer("Ana Brel lives where?", recite=False)["answer"] == said[0]
    assert memory.answer("Ana Brel lives where?", retrieve=False)["answer"] == said[0]  # no notes: nothing to trust
    said[0] = "Ana Brel"  # too short to be a recitation: kept as generated
    assert memory.answer("Ana Brel lives where?")["answer"] == "Ana Brel"
    said[0] = "Tomas Vek plays the cello"
    assert memory.chat([{"role": "user", "content": "Ana Brel lives where?"}]) == "Ana Brel lives in Oskovo."


def test_a_personal_question_routes_the_chunk_of_its_best_note(memory):
    """A question about the user (I/my/we/you), or naming what a remembered statement names, takes the chunk
    adapter of its best note when that note passes personal_note_threshold, even under route_threshold; other
    questions need route_threshold."""
    memory.remember(["My brother Casimir builds violins in Ostend."], name="mb")
    memory.remember(["Ana Brel lives in Oskovo."], name="ma")
    memory.route_threshold, memory.personal_note_threshold = 0.9, 0.2
    # stored as "Your brother Casimir builds violins in Ostend.": cosine 0.51 with the fake embedder, under 0.9
    assert memory.route("What does your brother Casimir build?") == ["mb"]
    assert memory.route("What does the brother build?") == []  # not personal: route_threshold applies
    assert memory.route("What does the brother Casimir build?") == ["mb"]  # names what a statement names
    assert memory.route("What does the brother Tomas build?") == []  # names nothing remembered
    assert memory.route("Where did I park?") == []  # personal, but no note passes 0.2
    memory.personal_note_threshold = 0.6
    assert memory.route("What does your brother Casimir build?") == []


def test_small_talk_gets_no_note_and_no_chunk_adapter(memory):
    """"Hello, how are you?" is personal by its "you" but asks nothing that was said: it stays on the base (a
    user's try: it was answered with a remembered statement, "Your daughter Ottilie turns 5 on Friday.")."""
    memory.remember(["How are you going to celebrate? My brother Casimir builds violins in Ostend."], name="mb")
    memory.route_threshold, memory.personal_note_threshold = 0.9, -1.0  # every personal question would match
    assert memory.route("How are you, brother Casimir?") == ["mb"]
    assert memory.retrieve_statements("How are you, brother Casimir?")
    for talk in ("Hello, how are you?", "Thanks a lot!", "How are you, Casimir?"):
        assert memory.route(talk) == [] and memory.retrieve_statements(talk) == []


def test_a_behaviour_reshapes_the_draft_the_other_adapters_write(memory, monkeypatch):
    """Behaviour adapters do not answer: the routed chunk adapters write a draft (recited as usual), then the
    behaviours alone answer with that draft shown before the question; under a word limit they pick one of
    the short answers the draft holds rather than write one."""
    memory.remember(["Ana Brel lives in Oskovo."], name="ma")
    memory.remember([{"role": "user", "content": "Just answer in one word from now on, please."},
                     {"role": "assistant", "content": "Ok"}], name="b1")
    memory.route_threshold = 0.0
    drafts, picks = [], []

    def fake_generate(prompts, *args, **kwargs):
        drafts.append(sorted(memory.peft.base_model.active_adapters))
        return ["Ana Brel lives in Oskovo."] * len(prompts)

    def fake_scores(prompt, answers, names):
        picks.append((prompt, list(answers), tuple(names)))
        return [float(a == "Oskovo.") for a in answers]

    monkeypatch.setattr(memory, "_generate", fake_generate)
    monkeypatch.setattr(memory, "_answer_scores", fake_scores)
    kinds = []
    monkeypatch.setattr(memory, "_type_fit", lambda kind, answers: kinds.append(kind) or [0.0] * len(answers))
    res = memory.answer("Where does Ana Brel live?")
    assert res["answer"] == "Oskovo." and res["draft"] == "Ana Brel lives in Oskovo."
    assert sorted(res["adapters"]) == ["b1", "ma"] and drafts == [["ma"]]
    prompt, answers, names = picks[0]
    assert "Ana Brel lives in Oskovo.\n\nWhere does Ana Brel live?" in prompt and names == ("b1",)
    assert answers == ["Ana.", "Ana Brel.", "Brel.", "Oskovo."] and kinds == ["place"]
    assert memory.chat([{"role": "user", "content": "Where does Ana Brel live?"}]) == "Oskovo."
    memory.forget("b1")
    res = memory.answer("Where does Ana Brel live?")
    assert res["answer"] == "Ana Brel lives in Oskovo." and res["draft"] is None


def test_type_fit_is_the_bare_base_log_probability_of_the_kind_after_each_answer(memory):
    memory.remember(["Ana Brel lives in Oskovo."], name="ma")
    tok = memory.tokenizer
    got = memory._type_fit("place", ["oskovo.", "Ana Brel."])
    assert memory.active == ["ma"]  # the stack is back
    for a, score in zip(["Oskovo is a", "Ana Brel is a"], got):  # one unpadded forward each, no adapter
        start = tok(a, add_special_tokens=False)["input_ids"]
        end = tok(" place", add_special_tokens=False)["input_ids"]
        with torch.no_grad(), memory.base_only():
            logp = memory.peft(input_ids=torch.tensor([start + end])).logits[0].log_softmax(-1)
        assert score == pytest.approx(sum(logp[len(start) + t - 1, e].item() for t, e in enumerate(end)), abs=1e-3)


def test_answer_scores_are_the_log_probability_of_each_whole_answer(memory):
    memory.remember(["Ana Brel lives in Oskovo."], name="ma")
    tok = memory.tokenizer
    prompt = aug.chat_prompt(tok, "Where does Ana Brel live?")
    answers = ["Oskovo.", "Ana Brel lives far away."]
    got = memory._answer_scores(prompt, answers, ["ma"])
    memory.peft.base_model.set_adapter(["ma"], inference_mode=True)
    for a, score in zip(answers, got):  # one unpadded forward per answer
        start = tok(prompt, add_special_tokens=False)["input_ids"]
        end = tok(a + aug.answer_suffix(tok), add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = memory.peft(input_ids=torch.tensor([start + end])).logits[0].log_softmax(-1)
        want = sum(logp[len(start) + t - 1, end[t]].item() for t in range(len(end)))
        assert score == pytest.approx(want, abs=1e-3)
