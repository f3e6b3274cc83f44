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
    """Whole text -> 1-D LongTensor of ids (no special tokens), one id per character.

    The same ids as ``tokenizer(text, add_special_tokens=False)`` (tested on the bundled corpora), looked up
    with numpy: the tokenizers pipeline (regex split per character, then the vocabulary) took 12 s for the
    2 MB of the two bundled sources on a busy 2-core machine, this takes about 0.1 s. Text is read literally:
    a "<unk>" written in a corpus is five characters, not the unknown token.
    """
    import numpy as np
    import torch

    if tokenizer.backend_tokenizer.normalizer is not None:  # build_char_tokenizer(lowercase=True)
        text = text.lower()
    chars = {tok: i for tok, i in tokenizer.get_vocab().items() if len(tok) == 1}
    keys = np.array(sorted(ord(c) for c in chars), dtype=np.uint32)
    ids = np.array([chars[chr(k)] for k in keys], dtype=np.int64)
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    where = np.searchsorted(keys, codes).clip(max=max(len(keys) - 1, 0))
    known = keys[where] == codes if len(keys) else np.zeros(len(codes), dtype=bool)
    out = np.where(known, ids[where] if len(keys) else 0, tokenizer.unk_token_id)
    return torch.from_numpy(out)
