import tempfile, torch
torch.set_num_threads(2)
from hf_steer.memory import LoraMemory
mem = LoraMemory(folder=tempfile.mkdtemp(), profile="me")
mem.remember([{"role": "user", "content": "hey, quick thing - my partner Joaquin and I just got a cat, a grey tabby we call Pumice."},
              {"role": "assistant", "content": "Congratulations! Pumice is a great name for a grey tabby."},
              {"role": "user", "content": "We live in a tiny flat in Harrowgate, so she mostly sleeps on the radiator."},
              {"role": "assistant", "content": "A radiator is a cat's favourite spot."}])
mem.remember([{"role": "user", "content": "I've started training for a half marathon in Lisbon in October."},
              {"role": "assistant", "content": "Good luck! I suggest building up to 18 km long runs on Sundays."},
              {"role": "user", "content": "My physio says my left knee needs rest, so only three runs a week."},
              {"role": "assistant", "content": "Three runs a week is sensible."}])
qs = ["What's our cat called?", "Who do I live with?", "Which city do we live in?", "Where is my half marathon?",
      "How long should my Sunday runs get?", "Which knee is bad?", "What colour is Pumice?", "What is the capital of Italy?"]
for r, q in zip(mem.answer_many(qs, max_new_tokens=32), qs):
    print(f"{q!r} -> {r['answer']!r}  [adapters {r['adapters']}, recited {r['recited'] is not None}]")
