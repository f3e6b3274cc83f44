"""abcGPT's source dial on a pretrained model: source-gated LoRA as a PEFT method ("abc adapter").

Using any public name of this package registers the method with PEFT (see :mod:`.registration`), so
``get_peft_model(base, AbcAdapterConfig(...))`` and ``PeftModel.from_pretrained(base, folder)`` work::

    from hf_steer.abcgpt.adapter import AbcAdapterConfig   # registers "ABC_ADAPTER" with PEFT
    model = PeftModel.from_pretrained(base, "path/to/adapter")
    model.generate(input_ids, alpha=0.3)

Layout as a PEFT method: :mod:`.config` (``AbcAdapterConfig``), :mod:`.layer` (the gated LoRA layer),
:mod:`.model` (the tuner and the dial); training as TRL/Trainer: :mod:`.adapt_config` / :mod:`.adapt_trainer`;
:mod:`.bench` behind ``hf-steer abc adapt bench``.
"""

from ...utils import lazy_exports

# public name -> submodule that defines it (imported on first use: the CLI stays free of torch and PEFT)
_EXPORTS = {
    "AbcAdapterConfig": ".config",
    "AbcAdapterLayer": ".layer",
    "AbcAdapterModel": ".model",
    "alpha_to_mixture": ".dial",
    "AbcAdaptConfig": ".adapt_config",
    "AbcAdaptTrainer": ".adapt_trainer",
    "train_adapter": ".adapt_trainer",
    "load_adapter": ".adapt_trainer",
    "generate_text": ".generation",
    "run_bench": ".bench",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, before=".registration")
