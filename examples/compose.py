"""The methods on one model: an Elarablation adapter and memory adapters active together in one
PeftModel, dosed with DRµGS, generating through stock ``generate``.

Every adapter hf_steer writes is a plain PEFT LoRA folder, so composing them is PEFT's multi-adapter
activation (each LoRA layer adds the sum of the active adapters' deltas); DRµGS then patches the
attention of the same model, whatever adapters it carries.

    hf-steer elarablate train female_names --output-dir elara-adapter
    hf-steer memory remember --text "user: My cat is called Miso." --folder mem --name cat
    python examples/compose.py --adapter elara-adapter --adapter mem/default/adapters/cat \
        --prompt "What is my cat called?"

``--json`` prints one JSON object (what tests/test_examples.py reads) instead of text.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from peft import PeftModel
from transformers import set_seed

from hf_steer import load_model
from hf_steer.drugs import inject, remove


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="base model folder (default: the bundled SmolLM2-135M-Instruct)")
    p.add_argument("--adapter", action="append", required=True, help="a PEFT adapter folder (repeat to stack)")
    p.add_argument("--prompt", default="Write the opening line of a story about an elf girl.")
    p.add_argument("--dose", default="A=0.3", help="DRµGS doses, e.g. A=0.3 or A=0.3,V=0.1 (default: A=0.3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    doses = {k.strip(): float(v) for k, v in (part.split("=") for part in args.dose.split(","))}
    base, tokenizer = load_model(args.model)
    messages = [{"role": "user", "content": args.prompt}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    n_prompt = inputs["input_ids"].shape[1]

    def generate(model) -> str:
        set_seed(args.seed)  # DRµGS draws its rotations from torch's RNG, which set_seed seeds
        out = model.generate(**inputs, max_new_tokens=args.max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        return tokenizer.decode(out[0, n_prompt:], skip_special_tokens=True)

    results = {"base": generate(base)}
    # One PeftModel, every adapter loaded under its folder's name, all of them active at once.
    names = [Path(a).name for a in args.adapter]
    model = PeftModel.from_pretrained(base, args.adapter[0], adapter_name=names[0])
    for name, folder in zip(names[1:], args.adapter[1:]):
        model.load_adapter(folder, adapter_name=name)
    model.base_model.set_adapter(names, inference_mode=True)  # PeftModel.set_adapter takes one name
    results["adapters"] = names
    results["stacked"] = generate(model)
    inject(model, **doses)
    results["dosed"] = generate(model)
    remove(model)
    results["after_remove"] = generate(model)

    if args.json:
        print(json.dumps(results))
        return
    print(f"prompt: {args.prompt}")
    print(f"base model:            {results['base']!r}")
    print(f"+ {', '.join(names)}:  {results['stacked']!r}")
    print(f"+ DRµGS {args.dose} (seed {args.seed}): {results['dosed']!r}")


if __name__ == "__main__":
    main()
