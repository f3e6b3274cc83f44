"""KL and perplexity change on unrelated text of auto adapters (the slot bench's two drift texts): python auto_drift.py WORK [WORK ...]"""
import json, sys
import torch
from peft import PeftModel
from hf_steer.utils import quiet_third_party
quiet_third_party()
from hf_steer.models import load_model
from hf_steer.benchmarking import heldout_drift
from hf_steer.elarablation.bench import unrelated_text
torch.set_num_threads(2)
base, tok = load_model(None)
out = {}
for work in sys.argv[1:]:
    model = PeftModel.from_pretrained(base, f"{work}/adapter")
    model.eval()
    with torch.no_grad():
        d = heldout_drift(model, tok, model.disable_adapter)
        u = heldout_drift(model, tok, model.disable_adapter, text=unrelated_text())
    out[work] = {"kl_nats": d["kl_nats"], "ppl_change_pct": d["ppl_change_pct"], "kl_unrelated_nats": u["kl_nats"],
                 "ppl_unrelated_change_pct": u["ppl_change_pct"]}
    print(work, json.dumps(out[work]), flush=True)
    base = model.unload()
