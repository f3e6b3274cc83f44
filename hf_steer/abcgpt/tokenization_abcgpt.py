"""A character-level tokenizer, built as a ``PreTrainedTokenizerFast`` so ``AutoTokenizer`` loads it.

One token per character seen in the training text (case kept unless asked), plus ``<unk>`` for any
other character and ``<|endoftext|>`` as eos/pad. Built on the ``tokenizers`` library: a WordLevel
model over single characters, a pre-tokenizer that isolates every character, and a Fuse decoder that
joins them back without spaces.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

EOS = "<|endoftext|>"
UNK = "<unk>"


def build_char_tokenizer(texts: Iterable[str], lowercase: bool = False) -> PreTrainedTokenizerFast:
    """Tokenizer whose vocabulary is every character in ``texts`` (sorted, so the same texts give the same ids)."""
    chars: set[str] = set()
    for text in texts:
        chars.update(text.lower() if lowercase else text)
    vocab = {EOS: 0, UNK: 1}
    for ch in sorted(chars):
        vocab.setdefault(ch, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    if lowercase:
        tok.normalizer = normalizers.Lowercase()
    # [\s\S] (not ".") so newlines are characters too; "isolated" keeps each one as its own token.
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, pad_token=EOS, unk_token=UNK, model_max_length=1_000_000
    )


def encode(tokenizer: PreTrainedTokenizerFast, text: str):
    """Whole text -> 1-D LongTensor of ids (no special tokens); chunks keep memory flat on megabyte files."""
    import torch

    ids: list[int] = []
    step = 100_000
    for start in range(0, len(text), step):
        ids.extend(tokenizer(text[start : start + step], add_special_tokens=False)["input_ids"])
    return torch.tensor(ids, dtype=torch.long)
