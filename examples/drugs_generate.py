"""DRµGS in a few lines: dose the middle attention heads, decode greedily, get a different story per seed.

    python examples/drugs_generate.py
"""

from transformers import TextStreamer

from hf_steer import load_model
from hf_steer.drugs import Dose, DrugsConfig, depth_profile, inject

model, tokenizer = load_model()  # bundled SmolLM2-135M-Instruct

# Rotate attention-head outputs (A) by up to 0.3 rad in the middle third of the layers.
config = DrugsConfig(doses={"A": Dose(theta=0.3, profile=depth_profile(0.5, spread=0.17))})
model = inject(model, config)

messages = [{"role": "user", "content": "Write the opening line of a story about a lighthouse keeper."}]
inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
for seed in range(3):
    print(f"--- seed {seed} ---")
    model.Dgenerate(**inputs, max_new_tokens=40, seed=seed,
                    streamer=TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True))

# Chat: between turns, wash the noise out of the cache while the user types.
#   model.cold_shower(cache, all_token_ids_so_far)
# During long generations: model.Dgenerate(..., cold_shower_every=16)
