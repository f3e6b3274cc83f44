"""LoRA memory in a dozen lines: remember two chunks, ask, stack, roll up, forget.

Run: python examples/memory_quickstart.py   (CPU, bundled SmolLM2-135M-Instruct, ~1-2 minutes)
"""

import tempfile

from hf_steer.memory import LoraMemory

mem = LoraMemory(folder=tempfile.mkdtemp(), profile="personal")  # embedder="default" -> MiniLM retrieval
mem.remember("user: Veltra Quosh was born in the town of Marbelin.\nassistant: Noted.", name="veltra")
mem.remember(["Doran Pellick works as a lighthouse keeper."], name="doran")

print(mem.active)                                        # ['veltra', 'doran'], stacked (exact sum)
print(mem.ask("Where was Veltra Quosh born?"))           # adapters
print(mem.ask("What is Doran Pellick's job?", adapters=False, retrieve=True))  # retrieval only

rollup = mem.rollup(["veltra", "doran"], method="cat")   # a FRESH adapter, replaces its members
print(rollup["name"], mem.active)
print(mem.forget("doran"))                               # roll-up rebuilt from 'veltra' alone
mem.save_merged("merged-memory", dtype="bfloat16")       # merged 16-bit copy (also from a 4-bit base)
