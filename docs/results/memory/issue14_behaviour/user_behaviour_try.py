"""Issue 14, tried as a user: behaviours asked for in a chat's own words, beside facts, on text not written for
the rules. Profile "sam": two fact chunks, then "call me Sam"; profile "short": the same facts, then a word limit
phrased another way. Prints each answer with its draft. Usage: python user_behaviour_try.py"""
import tempfile

import torch

torch.set_num_threads(2)
from hf_steer.memory import LoraMemory  # noqa: E402

FACTS = [
    [{"role": "user", "content": "So my grandmother Ilse turns ninety next week and we're throwing her a party in Bremerhaven."},
     {"role": "assistant", "content": "Ninety! That's wonderful. A party in Bremerhaven sounds lovely."},
     {"role": "user", "content": "She used to be a ship's cook, believe it or not."},
     {"role": "assistant", "content": "A ship's cook! She must have great stories."}],
    [{"role": "user", "content": "I'm bringing my famous rhubarb cake, it's the only thing I can bake."},
     {"role": "assistant", "content": "Rhubarb cake is a classic choice for a birthday."}],
]
QUESTIONS = ["Hi!", "How old will my grandmother be?", "Where is the party?", "What did my grandmother do for a living?",
             "What am I bringing to the party?", "What is the capital of Spain?"]
folder = tempfile.mkdtemp()
for profile, ask in (("sam", "Oh and please call me Sam from now on, nobody calls me Samuel."),
                     ("short", "Keep your answers really short please, like one or two words max.")):
    mem = LoraMemory(folder=folder, profile=profile)
    for chunk in FACTS:
        mem.remember(chunk)
    row = mem.remember([{"role": "user", "content": ask}, {"role": "assistant", "content": "Sure thing!"}])
    print(f"profile {profile}: {ask!r} -> {row['kind']} {row.get('behaviours')}", flush=True)
    for q, r in zip(QUESTIONS, mem.answer_many(QUESTIONS, max_new_tokens=32)):
        print(f"  {q!r} -> {r['answer']!r}  [draft {r.get('draft')!r}]", flush=True)
