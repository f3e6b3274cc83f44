"""Issue 14, tried as a user after the rare-word rule (retrieval.rare_words): a chat written for it, questions with
no I/my/we/you and no name, and ordinary questions that share a rare word with what was said (the rule's risk);
each answered by the same memory with the rule and without it, and by the bare base.

Usage: PYTHONPATH=. python docs/results/memory/issue14_recite/user_rare_try.py   (default path, 32 tokens, 2 threads)
"""
import tempfile

import torch

torch.set_num_threads(2)
from hf_steer.memory import LoraMemory, retrieval  # noqa: E402

QUESTIONS = [
    # about what was said, no I/my/we/you and no name
    "Which day are the violin lessons?", "Who teaches the violin lessons?", "What is broken on the car?",
    "When will the gearbox be fixed?",
    # ordinary questions sharing a rare word with a statement (should stay the base's answers)
    "How many strings does a violin have?", "What does a gearbox do?", "What is the capital of Italy?",
    # written after the first try (the rule then took every rare word), before the second: generic and definite
    "Is a gearbox expensive to repair?", "What is the violin made of?", "Which garage has the Skoda?",
    "What is wrong with the gearbox?",
]
mem = LoraMemory(folder=tempfile.mkdtemp(), profile="me")
base = [r["answer"] for r in mem.answer_many(QUESTIONS, adapters=False, retrieve=False, max_new_tokens=32)]
mem.remember([{"role": "user", "content": "so my daughter Wren started violin lessons last month, with a teacher called Mr Abernethy."},
              {"role": "assistant", "content": "That's lovely! The violin is a great first instrument."},
              {"role": "user", "content": "The lessons are on thursdays after school. The practice at home is very loud, ha."},
              {"role": "assistant", "content": "Practice pays off!"}])
mem.remember([{"role": "user", "content": "ugh, the gearbox on my car is broken again, the garage says friday at the earliest."},
              {"role": "assistant", "content": "Sorry to hear that. I hope it's fixed soon."},
              {"role": "user", "content": "It's a blue Skoda from 2016, and I need it for the school run."},
              {"role": "assistant", "content": "A tough week without a car."}])
with_rule = mem.answer_many(QUESTIONS, max_new_tokens=32)
retrieval.rare_words = lambda text: set()  # the same memory without the rule (named() reads it from the module)
without = mem.answer_many(QUESTIONS, max_new_tokens=32)
for q, b, r, r0 in zip(QUESTIONS, base, with_rule, without):
    print(f"{q!r}\n  rule:    {r['answer']!r}  [adapters {r['adapters']}, notes {r['notes']}]"
          f"\n  no rule: {r0['answer']!r}  [adapters {r0['adapters']}, notes {r0['notes']}]\n  base:    {b!r}")
