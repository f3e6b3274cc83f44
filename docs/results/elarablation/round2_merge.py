"""merge.py WORK OUT: the bundled model with WORK's adapter merged in, saved as a model folder (round 2 of auto)."""
import sys, torch
from peft import PeftModel
from hf_steer.models import load_model
torch.set_num_threads(2)
model, tok = load_model(None)
model = PeftModel.from_pretrained(model, sys.argv[1] + "/adapter").merge_and_unload()
model.save_pretrained(sys.argv[2]); tok.save_pretrained(sys.argv[2])
print("saved", sys.argv[2])
