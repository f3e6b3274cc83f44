"""Chat templates for models that have none (a base model such as Gemma-3-270M).

Chat contexts (the original elarablate files, the story prompts) need one. A tokenizer without a chat
template is an error unless the user names one: ``"gemma"`` (Gemma's turn markup, which Gemma base
tokenizers know as special tokens), ``"chatml"`` (``<|im_start|>`` markup), or a path to a Jinja file.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import HfSteerError

TEMPLATES = {
    # Gemma 3 instruction format (system text goes at the top of the first user turn, as Gemma does it).
    "gemma": (
        "{{ bos_token }}{% set system = '' %}{% for message in messages %}"
        "{% if message['role'] == 'system' %}{% set system = message['content'] + '\n\n' %}"
        "{% elif message['role'] == 'user' %}{{ '<start_of_turn>user\n' + system + message['content'] + '<end_of_turn>\n' }}"
        "{% set system = '' %}"
        "{% else %}{{ '<start_of_turn>model\n' + message['content'] + '<end_of_turn>\n' }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
    ),
    "chatml": (
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    ),
}


def chat_template(name_or_path: str) -> str:
    """The Jinja text of a named template (``gemma``, ``chatml``) or of a template file."""
    if name_or_path in TEMPLATES:
        return TEMPLATES[name_or_path]
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise HfSteerError(f"--chat-template {name_or_path!r} is neither {' nor '.join(TEMPLATES)} nor a file: "
                           "name one of those or give a Jinja template file")
    return path.read_text(encoding="utf-8")


def apply_chat_template(tokenizer, name_or_path: str | None) -> None:
    """Give ``tokenizer`` the named template when asked (it replaces the tokenizer's own, if any).

    Callers check the name with :func:`chat_template` before loading a model, so a typo costs nothing.
    """
    if name_or_path:
        tokenizer.chat_template = chat_template(name_or_path)
