"""variants.py FOLDER SET: no training; retrieval scores of locality questions + notes-only recall per prompt layout."""
import sys, re, json, torch, numpy as np
torch.set_num_threads(1)
sys.path.insert(0, __import__("os").path.join(__import__("os").path.dirname(__file__), "..", "issue14_speed"))
from hf_steer import load_model
from hf_steer.memory import LoraMemory, retrieval, bench, bench_data
from hf_steer.memory import augment as aug, bench_chats
from mychats import MY_CHATS
folder, which = sys.argv[1], sys.argv[2]
layouts = sys.argv[3].split(",") if len(sys.argv) > 3 else []
chats = {"dev": bench_chats.DEV_CHATS, "heldout": bench_chats.HELDOUT_CHATS, "mine": MY_CHATS}[which]
model, tok = load_model()
mem = LoraMemory(model, tok, folder=folder, profile="x")
loc = [q for q, _ in bench_data.LOCALITY]
def scores(q):
    rows = [mem.catalog.rows[n] for n in mem.names("chunk")]
    pairs = [(r["statements"][i], r["statement_embeddings"][i]) for r in rows for i in retrieval._live(r)]
    v = retrieval._unit(np.asarray(mem.embedder([q]))[0])
    sims = retrieval._unit([p[1] for p in pairs]) @ v
    return sorted(zip(sims.tolist(), [p[0] for p in pairs]), reverse=True)
locmax, right = [], []
if layouts: chats_scores = []
for chat in (chats if not layouts else []):
    mem.use_profile(f"{which}-{chat['name']}")
    for q in loc:
        s = scores(q)[0]; locmax.append((round(s[0], 3), q, s[1]))
    for q, e, *_ in chat["questions"]:
        sc = scores(q)
        rk = [i for i, (x, st) in enumerate(sc) if e.lower() in st.lower()]
        right.append((round(sc[rk[0]][0], 3) if rk else None, rk[0] if rk else None, q))
locmax.sort(reverse=True)
if not layouts: print("locality top scores:", locmax[:12])
if not layouts: print("right-note score, rank:", sorted(right, key=lambda x: (x[0] is None, x[0] or 0)))
PERSONAL = re.compile(r"\b(?:I|my|mine|our)\b|\b(?i:you|your|yours)\b")
print("personal locality qs:", [q for q in loc if PERSONAL.search(q)])

HEAD = aug.NOTES_HEADER
def layout(name, tokenizer, q, notes):
    if not notes:
        return aug.chat_prompt(tokenizer, q)
    bullets = "\n".join(f"- {s}" for s in notes)
    if name == "L0":
        return aug.chat_prompt(tokenizer, q, HEAD + "\n" + bullets)
    if name == "L1":  # notes in the system prompt
        return aug.chat_prompt(tokenizer, q, None, system=aug.SYSTEM_PROMPT + " What you remember about the user:\n" + bullets)
    if name == "L2":  # question first, notes after
        return aug.chat_prompt(tokenizer, q + "\n\n" + HEAD + "\n" + bullets)
    if name == "L3":  # notes, then a direct instruction
        return aug.chat_prompt(tokenizer, q, HEAD + "\n" + bullets + "\n\nAnswer from the notes.")
    if name == "L5":  # plain sentences + the question in one paragraph
        return aug.chat_prompt(tokenizer, " ".join(notes) + " " + q)
    if name == "L6":  # plain sentences + instruction
        return aug.chat_prompt(tokenizer, q, " ".join(notes) + "\n\nAnswer from the notes.")
    if name == "L4":  # notes as plain sentences, no header
        return aug.chat_prompt(tokenizer, q, " ".join(notes))
for lay in layouts:
    k, thr, pthr = 2, 0.4, None
    m = re.match(r"(L\d)(?:k(\d))?(?:t([\d.]+))?(?:p([\d.]+))?", lay)
    name = m.group(1); k = int(m.group(2) or 2); thr = float(m.group(3) or 0.4); pthr = float(m.group(4)) if m.group(4) else thr
    ok = n = has = 0; locnotes = 0
    for chat in chats:
        mem.use_profile(f"{which}-{chat['name']}")
        qs = [q for q, *_ in chat["questions"]]
        prompts, notes_l = [], []
        for q in qs:
            t = pthr if PERSONAL.search(q) else thr
            notes = [s for sc, s in scores(q)[:k] if sc >= t]
            notes_l.append(notes); prompts.append(layout(name, tok, q, notes))
        for q in loc:
            t = pthr if PERSONAL.search(q) else thr
            locnotes += bool([s for sc, s in scores(q)[:k] if sc >= t])
        ans = mem._generate(prompts, False, 48, 16)
        for (q, e, *_), a, nl in zip(chat["questions"], ans, notes_l):
            c = bench._contains(a, e); ok += c; n += 1; has += any(e.lower() in s.lower() for s in nl)
            if "-v" in sys.argv: print(f"   {lay} {c!s:5} {q!r} {a[:90]!r}")
    print(f"{lay}: notes-only recall {ok/n:.3f} ({ok}/{n}), answer in notes {has/n:.3f}, locality qs with notes {locnotes}/{len(loc)*len(chats)}", flush=True)
