"""The dial as a user gives it -> mixtures per row, and one-line errors for every bad dial."""

import pytest
import torch

from hf_steer.abcgpt.adapter.dial import alpha_to_mixture, rows_for_batch
from hf_steer.errors import HfSteerError

TWO = ["tinystories", "shakespeare"]
THREE = ["tinystories", "shakespeare", "names"]


def test_two_source_forms():
    assert torch.equal(alpha_to_mixture(0.3, TWO), torch.tensor([[0.7, 0.3]]))
    assert torch.equal(alpha_to_mixture(None, TWO), torch.tensor([[0.5, 0.5]]))
    per_row = alpha_to_mixture([0.0, 1.0, 0.25], TWO)
    assert torch.equal(per_row, torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.75, 0.25]]))
    assert torch.equal(alpha_to_mixture({"shakespeare": 1.0}, TWO), torch.tensor([[0.0, 1.0]]))
    assert torch.allclose(alpha_to_mixture("tinystories=0.2,shakespeare=0.8", TWO), torch.tensor([[0.2, 0.8]]))
    assert torch.equal(alpha_to_mixture([[0.6, 0.4]], TWO), torch.tensor([[0.6, 0.4]]))
    assert torch.equal(alpha_to_mixture(torch.tensor([0.5]), TWO), torch.tensor([[0.5, 0.5]]))


def test_n_source_forms():
    centre = alpha_to_mixture(None, THREE)
    assert centre.shape == (1, 3) and torch.allclose(centre.sum(), torch.tensor(1.0))
    assert torch.equal(alpha_to_mixture([0.2, 0.3, 0.5], THREE), torch.tensor([[0.2, 0.3, 0.5]]))
    rows = alpha_to_mixture([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], THREE)
    assert rows.shape == (2, 3)
    assert torch.equal(alpha_to_mixture({"names": 1.0}, THREE), torch.tensor([[0.0, 0.0, 1.0]]))


@pytest.mark.parametrize(
    ("alpha", "names", "needle"),
    [
        (1.5, TWO, "alpha is 1.5: it must lie in [0, 1] (0 = tinystories, 1 = shakespeare)"),
        (-0.1, TWO, "it must lie in [0, 1]"),
        (float("nan"), TWO, "alpha contains NaN or inf"),
        ([0.2, float("inf")], TWO, "alpha contains NaN or inf"),
        ([], TWO, "alpha is an empty list"),
        ({"poems": 1.0}, TWO, "names unknown source 'poems'"),
        ("shakespeare=0.7,tinystories=0.2", TWO, "sum to 0.9, not 1"),
        ([0.5, 0.6, 0.1], THREE, "does not sum to 1"),
        ([0.5, 0.5], THREE, "alpha has shape (1, 2): pass a mixture of 3 weights"),
        ([[1.2, -0.2, 0.0]], THREE, "has weights outside [0, 1]"),
        ("a mixture", TWO, "is not NAME=WEIGHT"),
        (object(), TWO, "is not a number"),
    ],
)
def test_bad_dials_are_one_line_errors(alpha, names, needle):
    with pytest.raises(HfSteerError) as info:
        alpha_to_mixture(alpha, names)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_rows_for_batch_broadcasts_and_repeats():
    gate = torch.tensor([[1.0], [2.0]])
    assert rows_for_batch(gate[:1], 5).shape == (1, 1)
    assert rows_for_batch(gate, 2) is gate
    assert rows_for_batch(gate, 6).flatten().tolist() == [1, 1, 1, 2, 2, 2]  # generate repeats each row in place
    with pytest.raises(HfSteerError, match="alpha gives 2 rows but the batch has 3"):
        rows_for_batch(gate, 3)
