"""Issue 14, tried as a user after the answer-type check landed (2026-12-05): a chat written for this try, not for
the rules, whose questions ask for a common noun beside a name (a job at a named place, an instrument in a named
orchestra, a dog's breed and its name), with the one-word request in the method author's words. For each question:
the draft (the answer path without the behaviour), the one-word answer the memory gives, and what the behaviour
adapter's score alone would have picked (the pick before the type check and echo drop).

Usage (from this folder): python user_type_try.py"""
import tempfile

import numpy as np
import torch

torch.set_num_threads(2)
from hf_steer.memory import LoraMemory  # noqa: E402
from hf_steer.memory import behaviour as beh  # noqa: E402

CHUNKS = [
    [{"role": "user", "content": "My brother Tomasz is a carpenter in Dunloe, he mostly builds boats."},
     {"role": "assistant", "content": "A boat-building carpenter in Dunloe, how lovely!"},
     {"role": "user", "content": "And I work as a pharmacist at the Greyfield clinic."},
     {"role": "assistant", "content": "Pharmacy is important work."}],
    [{"role": "user", "content": "My daughter Nell plays the oboe in the Castlebay youth orchestra."},
     {"role": "assistant", "content": "The oboe is a beautiful instrument."},
     {"role": "user", "content": "Our dog is a beagle called Biscuit."},
     {"role": "assistant", "content": "Biscuit the beagle, adorable!"}],
]
BEHAVIOUR = [{"role": "user", "content": "Can you do me a favour and just answer in one word for simple things like that?"},
             {"role": "assistant", "content": "Ok"}]
QUESTIONS = [("What is my job?", "pharmacist"), ("Where do I work?", "Greyfield"),
             ("What is my brother's job?", "carpenter"), ("What does my brother do for a living?", "carpenter"),
             ("Where does my brother live?", "Dunloe"), ("What instrument does my daughter play?", "oboe"),
             ("Which orchestra is my daughter in?", "Castlebay"), ("What breed is my dog?", "beagle"),
             ("What is my dog called?", "Biscuit"), ("What is my daughter's name?", "Nell")]

mem = LoraMemory(folder=tempfile.mkdtemp(), profile="me")
for chunk in CHUNKS:
    mem.remember(chunk)
mem.remember(BEHAVIOUR)
names = tuple(mem.names("behaviour"))
tally = {"draft holds it": 0, "one-word answer": 0, "adapter score alone": 0}
for (q, expected), r in zip(QUESTIONS, mem.answer_many([q for q, _ in QUESTIONS], max_new_tokens=32)):
    draft = r.get("draft") or ""
    cands = beh.copy_candidates(draft, 1)
    alone = cands[int(np.argmax(mem._answer_scores(beh.reshape_prompt(mem.tokenizer, q, draft), cands, names)))] if cands else ""
    for key, text in (("draft holds it", draft), ("one-word answer", r["answer"]), ("adapter score alone", alone)):
        tally[key] += expected.lower() in text.lower()
    print(f"{q!r} [{beh.asked_type(q)}] -> {r['answer']!r} (score alone {alone!r}) <- {draft!r}", flush=True)
for key, n in tally.items():
    print(f"{key:20s} {n}/{len(QUESTIONS)}")
