"""diag.py FOLDER SET [train]: train SET's chats into FOLDER (profiles conv-NAME) once; then per question:
statement scores, notes, routed adapters, answers on default / notes-only / adapters-only."""
import sys, json, time, torch, numpy as np
torch.set_num_threads(1)
sys.path.insert(0, __import__("os").path.join(__import__("os").path.dirname(__file__), "..", "issue14_speed"))
from hf_steer import load_model
from hf_steer.memory import LoraMemory, retrieval, bench
from hf_steer.memory import bench_chats
from mychats import MY_CHATS
folder, which = sys.argv[1], sys.argv[2]
chats = {"dev": bench_chats.DEV_CHATS, "heldout": bench_chats.HELDOUT_CHATS, "mine": MY_CHATS}[which]
model, tok = load_model()
mem = LoraMemory(model, tok, folder=folder, profile="x")
if "train" in sys.argv:
    for chat in chats:
        mem.use_profile(f"{which}-{chat['name']}")
        for c in chat["chunks"]:
            t = time.perf_counter(); row = mem.remember(c)
            print(f"{chat['name']} {row['name']} {time.perf_counter()-t:.1f}s {row['train']['examples']} texts; statements {row['statements']} superseded-notes {row.get('notes')}", flush=True)
tot = {"default": 0, "notes_only": 0, "adapters_only": 0, "n": 0, "note_has": 0}
for chat in chats:
    mem.use_profile(f"{which}-{chat['name']}")
    rows = [mem.catalog.rows[n] for n in mem.names("chunk")]
    qs = [q for q, *_ in chat["questions"]]
    res = {p: mem.answer_many(qs, **bench.PATHS[p]) for p in ("default", "notes_only", "adapters_only")}
    for i, (q, e, kind, sup) in enumerate(chat["questions"]):
        v = np.asarray(mem.embedder([q]))[0]
        scored = []
        for r in rows:
            live = retrieval._live(r)
            u = np.asarray(r["statement_vecs"]) if "statement_vecs" in r else None
            for j, s in enumerate(r["statements"]):
                sc = float(np.dot(retrieval._unit(np.asarray(r["statement_embeddings"][j])), retrieval._unit(v))) if "statement_embeddings" in r else float("nan")
                scored.append((sc, s, j in live))
        scored.sort(reverse=True)
        d = res["default"][i]
        tot["n"] += 1
        for p in ("default", "notes_only", "adapters_only"):
            tot[p] += bench._contains(res[p][i]["answer"], e)
        has = any(e.lower() in n.lower() for n in d["notes"]); tot["note_has"] += has
        print(f"\n[{kind}] {q}  expect {e!r}  note-has-answer={has}")
        for sc, s, live in scored[:4]:
            print(f"    {sc:.3f} {'' if live else '(superseded) '}{s}")
        print(f"    notes {d['notes']}  adapters {d['adapters']}")
        for p in ("default", "notes_only", "adapters_only"):
            a = res[p][i]["answer"]
            print(f"    {p:13} {bench._contains(a, e)!s:5} {a!r}")
print({k: (v if k == "n" else round(v / tot['n'], 3)) for k, v in tot.items()})
