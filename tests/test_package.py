"""The public names promised in hf_steer/__init__.py all resolve."""

import hf_steer


def test_public_names_resolve():
    for name in hf_steer.__all__:
        assert getattr(hf_steer, name) is not None, name
    assert callable(hf_steer.load_model) and callable(hf_steer.inject)
