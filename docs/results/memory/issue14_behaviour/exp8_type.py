"""Issue 14: a word limit's pick with an answer-type check, and with echoes dropped, together (the previous session
tried each alone: type 24 -> 25/27 facts but "What is the opposite of up?" -> "Up."; echo drop 7 -> 8/20 simple
right). FOLDER holds the 4 dev chats learnt (exp.py) and the one-word behaviour in every profile (exp3.py).

- ``plain``: log p(candidate | question, draft), the behaviour adapter on (what the memory does);
- ``type``: + the bare base's log p(" <noun>" | "<candidate> is a"), the noun the question asks for ("What is my
  job?" -> job, "What colour ..." -> colour, "What kind of animal ..." -> animal, where -> place, who -> person);
  questions with no such noun ("What does my brother make?") get no type term;
- ``noecho``: candidates made only of the question's own words dropped ("Up." for the opposite of up).

Usage (from this folder): python exp8_type.py FOLDER [learn]   (learn: teach the 4 dev chats and the behaviour chunk into FOLDER first)
"""
import sys

import torch

torch.set_num_threads(2)
from picks import for_each_draft, learn, score_four_ways  # noqa: E402

from hf_steer.memory import LoraMemory  # noqa: E402
from hf_steer.memory import bench_chats as chats  # noqa: E402

folder = sys.argv[1]
mem = LoraMemory(folder=folder, profile=chats.DEV_CHATS[0]["name"])
if sys.argv[2:] == ["learn"]:
    learn(mem)
tally: dict[str, list[bool]] = {}
for_each_draft(mem, score_four_ways(mem, tally, show=("plain", "noecho+type")))
for key in sorted(tally):
    print(f"{key:22s} {sum(tally[key])}/{len(tally[key])}")
