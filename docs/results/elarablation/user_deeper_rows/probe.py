"""Issue 16, a user's own word-rule file: p(whole bad word) at its trained and unseen contexts, base vs adapters.

Usage: python probe.py ADAPTER [ADAPTER ...]  (2 threads, exact probabilities at T=1)
"""
import sys

import torch
from peft import PeftModel

from hf_steer.elarablation.contexts import render_context, tokenize_context
from hf_steer.elarablation.trainer import continuation_ids
from hf_steer.models import load_model

torch.set_num_threads(2)
model, tok = load_model(None)
rows = [("train", {"user": "Write a short fantasy story about a healer.", "text": "In the mountain village of Korr, there lived a young healer named"}),
        ("train", {"user": "Write a story about a queen.", "text": "The old queen had ruled for forty years. Her youngest daughter, a girl named"}),
        ("held", {"user": "Write a story about a sorceress.", "text": "Deep in the forest lived a sorceress called"}),
        ("held", {"user": "Write a story about a princess.", "text": "Once upon a time, in a kingdom by the sea, there was a princess named"}),
        ("held", {"user": "Write a story about a bard.", "text": "The bard tuned his lute and sang of a warrior maiden named"}),
        ("train", {"user": "Describe a market.", "text": "The market was loud and crowded, a living"}),
        ("held", {"user": "Describe an old library.", "text": "The shelves held the history of the kingdom, a"}),
        ("held", {"user": "Write about a hero.", "text": "His courage in the battle was a"})]
words = ["Elara", "Seraphina", "Lyra", "tapestry", "testament"]
def probs(m):
    out = {}
    for split, row in rows:
        text = render_context(row, tok)
        for w in words:
            ids = tokenize_context(row, tok)
            p = 1.0
            for t in continuation_ids(tok, text, w):
                with torch.no_grad():
                    p *= torch.softmax(m(input_ids=torch.tensor([ids])).logits[0, -1].float(), -1)[t].item()
                ids = ids + [t]
            out[(split, row["text"][-20:], w)] = p
    return out
base = probs(model)
for folder in sys.argv[1:]:
    pm = PeftModel.from_pretrained(model, folder)
    pm.eval()
    tuned = probs(pm)
    for split in ("train", "held"):
        b = sum(v for k, v in base.items() if k[0] == split)
        a = sum(v for k, v in tuned.items() if k[0] == split)
        print(folder, split, f"sum p(bad word) {b:.3f} -> {a:.3f} ({a/b:.2f}x)")
    for k in base:
        if base[k] > 0.02:
            print("   ", k, f"{base[k]:.3f} -> {tuned[k]:.3f}")
    model = pm.unload()
