"""Explore: a grid of generations (prompts × types × doses × samples) on one self-contained HTML page.

Like the author's generation explorer: pick a prompt, a type, a dose, and read what the model wrote,
side by side with the sober greedy answer. The page has no external assets; a few lines of inline
JavaScript filter the cards.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

import torch

from .dose import DEFAULT_SPREAD, Dose, DrugsConfig, depth_profile
from .injection import inject, remove, sober


def chat_inputs(tokenizer, prompts: Sequence[str], chat: bool = True, device=None):
    """Tokenize prompts (through the chat template when there is one), left-padded."""
    if chat and tokenizer.chat_template:
        texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                               add_generation_prompt=True) for p in prompts]
    else:
        texts = list(prompts)
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not (chat and tokenizer.chat_template))
    return enc.to(device) if device is not None else enc


@torch.no_grad()
def explore(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    types: str = "HQKVA",
    thetas: Sequence[float] = (0.1, 0.3),
    depth: float = 0.5,
    spread: float = DEFAULT_SPREAD,
    samples: int = 3,
    max_new_tokens: int = 48,
    seed: int = 0,
    chat: bool = True,
    progress=None,
) -> list[dict]:
    """Generate every combination; returns rows ``{prompt, type, theta, sample, text}`` (type "sober": greedy)."""
    rows = []
    previous = getattr(model, "_drugs_state", None)
    previous_config = previous.config if previous is not None else None
    inject(model, DrugsConfig())
    try:
        for prompt in prompts:
            enc = chat_inputs(tokenizer, [prompt] * samples, chat, model.device)
            start = enc["input_ids"].shape[1]
            with sober(model):
                out = model.Dgenerate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
            rows.append({"prompt": prompt, "type": "sober", "theta": 0.0, "sample": 0,
                         "text": tokenizer.decode(out[0, start:], skip_special_tokens=True)})
            for letter in types:
                for theta in thetas:
                    inject(model, DrugsConfig(doses={letter: Dose(theta, depth_profile(depth, spread))}))
                    # One batch holds all samples: each row draws its own noise.
                    out = model.Dgenerate(**enc, max_new_tokens=max_new_tokens, seed=seed,
                                          pad_token_id=tokenizer.pad_token_id)
                    for i in range(samples):
                        rows.append({"prompt": prompt, "type": letter, "theta": theta, "sample": i,
                                     "text": tokenizer.decode(out[i, start:], skip_special_tokens=True)})
                    if progress:
                        progress(f"{prompt[:30]!r} {letter} θ={theta:g}")
    finally:
        if previous_config is not None:
            inject(model, previous_config)
        else:
            remove(model)
    return rows


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>DRµGS explorer</title>
<style>
body{{font:15px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:70em;padding:0 1em;color:#222}}
header{{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ddd}}
label{{margin-right:1em}} select{{font:inherit}}
.card{{border:1px solid #ddd;border-radius:6px;padding:.6em .8em;margin:.6em 0}}
.card.sober{{border-color:#4a8;background:#f4fbf7}}
.meta{{font-size:12px;color:#666;margin-bottom:.3em}} .text{{white-space:pre-wrap}}
</style></head><body>
<h1>DRµGS explorer</h1>
<p>{description}</p>
<header>
<label>prompt <select id="prompt">{prompt_options}</select></label>
<label>type <select id="type"><option value="">all</option>{type_options}</select></label>
<label>θ <select id="theta"><option value="">all</option>{theta_options}</select></label>
<label><input type="checkbox" id="showsober" checked> sober greedy</label>
<span id="count"></span>
</header>
<main id="cards"></main>
<script>
const ROWS = {rows};
const $ = (id) => document.getElementById(id);
function esc(s) {{ const d = document.createElement("div"); d.textContent = s; return d.innerHTML; }}
function render() {{
  const p = $("prompt").value, t = $("type").value, th = $("theta").value, showSober = $("showsober").checked;
  const shown = ROWS.filter(r => r.prompt === p && (r.type === "sober" ? showSober :
      (!t || r.type === t) && (!th || String(r.theta) === th)));
  $("cards").innerHTML = shown.map(r => `<div class="card ${{r.type === "sober" ? "sober" : ""}}">
    <div class="meta">${{r.type === "sober" ? "sober greedy" : `type ${{r.type}} · θ ${{r.theta}} · sample ${{r.sample}}`}}</div>
    <div class="text">${{esc(r.text)}}</div></div>`).join("");
  $("count").textContent = `${{shown.length}} generations`;
}}
for (const id of ["prompt", "type", "theta", "showsober"]) $(id).addEventListener("change", render);
render();
</script></body></html>
"""


def render_html(rows: list[dict], description: str = "") -> str:
    """One self-contained page: the rows as inline JSON plus filters."""
    prompts = list(dict.fromkeys(r["prompt"] for r in rows))
    types = list(dict.fromkeys(r["type"] for r in rows if r["type"] != "sober"))
    thetas = sorted({r["theta"] for r in rows if r["type"] != "sober"})

    def options(values):
        return "".join(f'<option value="{html.escape(str(v))}">{html.escape(str(v))}</option>' for v in values)

    # "</" inside inline JSON would end the script element early.
    data = json.dumps(rows, ensure_ascii=False).replace("</", "<\\/")
    return _PAGE.format(
        description=html.escape(description),
        prompt_options=options(prompts),
        type_options=options(types),
        theta_options=options(thetas),
        rows=data,
    )
