"""Issue 16: where a regex file's bad mass sits at its slot (the base, or an adapter): the bad tokens in the top 50,
the top 10, and the largest bad tokens of the whole vocabulary. Written for names_dark_m.yaml, whose bad mass lay
wholly beyond the top 50.

Usage: PYTHONPATH=. python tail_slot.py [ADAPTER]   (the bundled model, seconds)
"""

import re
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from hf_steer.elarablation.contexts import load_file, tokenize_context
from hf_steer.models import bundled_model_path

FILE = "tests/elarablation/fixtures/elarablate/latest/slopcontext/names/names_dark_m.yaml"
torch.set_num_threads(2)
path = bundled_model_path()
tok = AutoTokenizer.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
if len(sys.argv) > 1:
    from peft import PeftModel
    model = PeftModel.from_pretrained(model, sys.argv[1])
model.eval()
row = load_file(FILE)[0]
ids = tokenize_context(row, tok)
with torch.no_grad():
    p = model(input_ids=torch.tensor([ids])).logits[0, -1].float().softmax(-1)
bad = [re.compile("^[^ ]"), re.compile("^ [^A-Z]")]
vocab = [tok.decode([i]) for i in range(len(p))]
isbad = torch.tensor([any(r.search(v) for r in bad) for v in vocab])
top = p.topk(50)
print("bad mass", float(p[isbad].sum()), "bad in top50", [(vocab[i], round(float(p[i]), 4)) for i in top.indices.tolist() if isbad[i]])
print("top10", [(vocab[i], round(float(p[i]), 3)) for i in top.indices[:10].tolist()])
print("top50 mass", float(top.values.sum()), "50th", float(top.values[-1]))
bt = p.clone()
bt[~isbad] = 0
print("top bad", [(vocab[i], round(float(bt[i]), 5)) for i in bt.topk(10).indices.tolist()])
