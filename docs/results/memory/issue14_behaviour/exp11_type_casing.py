"""Issue 14: the three pick changes tried one at a time, together -- short answers in the draft's own casing
(exp10_casing.py: the job question's gap halved, Larkfield -2.51 against nurse -4.00), the answer-type check
(exp8_type.py: gave "Nurse." 3.0 nats back, 0.1 nat short) and echoes dropped (exp8_type.py: one simple question
more). Teaches the 4 dev chats and the one-word chunk into FOLDER with the casing patched in, then scores:

- ``plain``: the default pick on the patched learning (casing alone);
- ``type``: + the bare base's log p(" <noun>" | "<Candidate> is a(n)"), the noun the question asks for;
- ``noecho``: candidates made only of the question's words dropped;
- ``noecho+type``: both.

Usage (from this folder): python exp11_type_casing.py FOLDER
"""
import sys

import torch

torch.set_num_threads(2)
from picks import for_each_draft, learn, patch_casing, score_four_ways  # noqa: E402

from hf_steer.memory import LoraMemory  # noqa: E402
from hf_steer.memory import bench_chats as chats  # noqa: E402

candidates = patch_casing()
mem = LoraMemory(folder=sys.argv[1], profile=chats.DEV_CHATS[0]["name"])
learn(mem)
tally: dict[str, list[bool]] = {}
for_each_draft(mem, score_four_ways(mem, tally, candidates))
for key in sorted(tally):
    print(f"{key:22s} {sum(tally[key])}/{len(tally[key])}")
