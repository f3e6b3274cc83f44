"""Put DRµGS into a transformers decoder, and take them out again, through public APIs only.

How the noise gets in, on any decoder whose attention modules call ``ALL_ATTENTION_FUNCTIONS``:

* **Q, K, V, A** - we register a wrapper in transformers' ``AttentionInterface`` under a new name
  (``"drugs+sdpa"``, ``"drugs+eager"``, ...) and switch the model to it with the public
  ``model.set_attn_implementation(name)``. The wrapper rotates the queries, keys and values it is
  handed, calls the model's own implementation, then rotates the per-head outputs (A) before the
  output projection. The same name is registered in ``AttentionMaskInterface`` with the original mask
  function: an unknown name there makes transformers silently build *no* causal mask.
  Queries and keys reach the attention function *after* RoPE, so Q and K are rotated after the
  positional rotation; rotating the whole post-RoPE vector is still a rotation by an angle < θ.
* **H** - a forward pre-hook on each attention module rotates the hidden state it receives (one
  rotation per token, after the layer norm, since that is what attention reads).
* A forward pre-hook on the model records, once per forward, where its tokens sit (cache length,
  ``position_ids``, attention mask), so every layer agrees on which positions are dosed.

The model keeps its class (``save_pretrained`` writes the sober original: the noise lives in hooks
and an attention name, never in the weights or the config file), and :func:`remove` undoes all of it.
``inject`` adds two callables to the model object, ``model.Dgenerate`` and ``model.cold_shower``
(see :mod:`~hf_steer.drugs.generation`); stock ``model.generate`` works on a dosed model as it is.
(Before: the class was swapped for a ``Drugged<Class>`` subclass, which leaked into
``save_pretrained`` as ``architectures: ["DruggedLlamaForCausalLM"]``, the config's private
``_attn_implementation_internal`` was written directly and the private ``GenerationMixin._prefill``
was overridden to read the prompt sober; all three are gone.)

No state is global: the wrapper is one stateless function that finds its layer's dose on the
``module`` transformers passes it (``module._drugs_site``), so two dosed models in one process keep
their own doses, seeds and switches.

K/V: the wrapper is handed the keys and values *after* the cache update, i.e. every position seen so
far. By default it rotates a fresh copy of all of them each step (the cache keeps the sober tensors;
"noise affects the current step only"). With ``persist_kv=True`` it instead rotates, in place, only
the positions computed in this forward, which are the cache's own storage: the noise stays.

Which positions are dosed: never the first ``sinks`` positions of a sequence (counted from the first
non-padding token when ``position_ids`` are given), and never positions before ``sober_before``.
A forward that feeds *several* tokens into a KV cache it was given (the prefill of ``generate``, or
a new chat turn appended to a cache) reads them as a prompt: all but the last are sober, so the
cache starts clean and only the position that predicts the next token is dosed
(``dose_prompt=True`` doses them all). A forward without a cache (scoring a text) is dosed at
every position past the sinks.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import types
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import HfSteerError
from .dose import TYPES, DrugsConfig
from .rotation import random_rotation, rotate

_PREFIX = "drugs+"


# --------------------------------------------------------------------------------------------------
# Per-model state
# --------------------------------------------------------------------------------------------------


@dataclass
class _ForwardInfo:
    """What every layer of one forward pass needs to know about positions (computed once per forward)."""

    offset: int  # index of the first query position in the sequence (= cached length)
    q_len: int
    positions: torch.Tensor | None  # (batch, q_len) token positions, padding-aware when known
    sober_before: int = 0  # positions < this stay sober in this forward
    gates: dict = field(default_factory=dict)  # memo: every layer of a forward asks for the same gates
    noise: dict = field(default_factory=dict)  # (type, shape, device) -> every dosed layer's draws, see DrugsState.rotate


class DrugsState:
    """One dosed model's doses, random source and switches. Lives on the model as ``_drugs_state``."""

    def __init__(self, config: DrugsConfig, num_layers: int):
        self.num_layers = num_layers
        self.active = True
        self.sober_before = 0  # positions < this are not dosed (Dgenerate sets it to the prompt's last token)
        self.forward_info: _ForwardInfo | None = None
        # The last forward's cache (weakly) and attention mask: what a cold shower during generate washes.
        self.last_cache: weakref.ref | None = None
        self.last_mask: torch.Tensor | None = None
        # The model's own forward kwargs of that forward (e.g. abcGPT's ``alpha``): a cold shower re-reads with them.
        self.last_model_kwargs: dict = {}
        self.shower_every: int | None = None  # model.cold_shower(every=t): Dgenerate's default schedule
        self.sites: list = []  # (attention module, _Site) per layer, filled by inject
        # Set by inject: what remove() undoes.
        self.host: weakref.ref | None = None
        self.original_implementation: str | None = None
        self.model_hooks: tuple = ()
        self._seed: int | None = None
        self._generators: dict[torch.device, torch.Generator] = {}
        self.set_config(config)

    def set_config(self, config: DrugsConfig) -> None:
        self.config = config
        self.thetas = config.layer_thetas(self.num_layers)
        self.dosed_layers = [any(self.thetas[t][layer] > 0 for t in TYPES) for layer in range(self.num_layers)]
        for module, site in self.sites:
            _sync_h_hook(module, site)

    def seed(self, seed: int | None) -> None:
        """Fix the noise to ``seed`` (``None``: draw from torch's global RNG, which ``set_seed`` seeds)."""
        self._seed = seed
        self._generators.clear()

    def generator(self, device: torch.device) -> torch.Generator | None:
        if self._seed is None:
            return None
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self._seed)
        return self._generators[device]

    def theta(self, letter: str, layer: int) -> float:
        return self.thetas[letter][layer] if self.active else 0.0

    def layer_is_dosed(self, layer: int) -> bool:
        return self.active and self.dosed_layers[layer]

    # --- the noise ------------------------------------------------------------------------------

    def rotate(self, letter: str, layer: int, x: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
        """Rotate ``x (..., d)`` by this layer's dose of ``letter`` where ``gate`` (broadcastable to
        ``x.shape[:-1]``; ``None``: everywhere) is true.

        The Gaussian samples and angles of *every* layer dosed with ``letter`` are drawn together, by
        the first of them a forward reaches, and each layer takes its slice: at decode size each op
        costs its dispatch, and this moves a rotation's draws, ``angle·θ``, ``sin`` and ``cos`` into one
        call per forward (see rotation.py for the figures). Outside a model forward (no per-forward
        record) each call draws its own.
        """
        theta = self.theta(letter, layer)
        info = self.forward_info
        if info is None:
            return random_rotation(x, theta if gate is None else theta * gate.to(torch.float32),
                                   generator=self.generator(x.device))
        key = (letter, x.shape, x.device)
        if key not in info.noise:
            info.noise[key] = self._draw(letter, x)
        noise, uniform, cos, sin = info.noise[key][layer]
        if gate is None:
            return rotate(x, noise, cos, sin)
        angle = uniform * (theta * gate.to(uniform.dtype)).unsqueeze(-1)
        return rotate(x, noise, angle.cos(), angle.sin())

    def _draw(self, letter: str, x: torch.Tensor) -> dict[int, tuple]:
        """``{layer: (noise, uniform, cos, sin)}`` for every layer dosed with ``letter``, drawn in one call."""
        layers = [layer for layer, theta in enumerate(self.thetas[letter]) if theta > 0]
        dtype = torch.promote_types(x.dtype, torch.float32)
        generator = self.generator(x.device)
        noise = torch.randn((len(layers), *x.shape), generator=generator, dtype=dtype, device=x.device)
        uniform = torch.rand((len(layers), *x.shape[:-1], 1), generator=generator, dtype=dtype, device=x.device)
        thetas = torch.tensor([self.thetas[letter][layer] for layer in layers], dtype=dtype, device=x.device)
        angle = uniform * thetas.view(-1, *[1] * x.dim())
        # unbind: one call makes every layer's views (indexing each layer's slice costs a call apiece).
        return dict(zip(layers, zip(noise.unbind(), uniform.unbind(), angle.cos().unbind(), angle.sin().unbind())))

    # --- which positions get noise -------------------------------------------------------------

    def _info(self, q_len: int, kv_len: int, device: torch.device) -> _ForwardInfo:
        info = self.forward_info
        if info is None or info.q_len != q_len:
            # Called below the top-level model (no pre-hook ran): assume a full cache.
            info = _ForwardInfo(offset=max(kv_len - q_len, 0), q_len=q_len, positions=None,
                                sober_before=self.sober_before)
        return info

    def _memo(self, kind: str, q_len: int, kv_len: int, device: torch.device, compute) -> torch.Tensor:
        info = self.forward_info
        if info is None or info.q_len != q_len:
            return compute(q_len, kv_len, device)
        key = (kind, kv_len, device, self.config.sinks)
        if key not in info.gates:
            info.gates[key] = compute(q_len, kv_len, device)
        return info.gates[key]

    def query_gate(self, q_len: int, kv_len: int, device: torch.device) -> torch.Tensor | None:
        """``(batch or 1, q_len)`` bool: which query positions of this forward get noise (``None``: all)."""
        return self._memo("q", q_len, kv_len, device, self._query_gate)

    def key_gate(self, q_len: int, kv_len: int, device: torch.device) -> torch.Tensor | None:
        """``(batch or 1, kv_len)`` bool: which key/value positions get noise this forward (``None``: all)."""
        return self._memo("k", q_len, kv_len, device, self._key_gate)

    def _query_gate(self, q_len: int, kv_len: int, device: torch.device) -> torch.Tensor | None:
        info = self._info(q_len, kv_len, device)
        if info.positions is None and info.offset >= max(self.config.sinks, info.sober_before):
            return None  # a decode step past the sinks and the prompt: every position, no mask to build
        index = torch.arange(info.offset, info.offset + q_len, device=device)
        positions = info.positions.to(device) if info.positions is not None else index[None]
        gate = (positions >= self.config.sinks) & (index >= info.sober_before)[None]
        return None if bool(gate.all()) else gate

    def _key_gate(self, q_len: int, kv_len: int, device: torch.device) -> torch.Tensor:
        info = self._info(q_len, kv_len, device)
        end = info.offset + q_len  # the keys end at the last query position
        index = torch.arange(end - kv_len, end, device=device)
        last = info.positions[:, -1:].to(device) if info.positions is not None else torch.full((1, 1), end - 1, device=device)
        positions = last - (end - 1 - index)[None]
        # While the sober prompt is being read, its keys stay sober too; once generating, every
        # non-sink key is fair game (the cache keeps them sober unless persist_kv).
        floor = info.sober_before if info.offset < info.sober_before else 0
        gate = (positions >= self.config.sinks) & (index >= floor)[None]
        return None if bool(gate.all()) else gate


@dataclass
class _Site:
    """Hung on each attention module: which model state and layer it belongs to, and what it wrapped."""

    state: DrugsState
    layer: int
    original: object  # the model's own attention function
    hook: object  # the H pre-hook handle (set once the site is hung on its module)


# --------------------------------------------------------------------------------------------------
# The attention wrapper (one function for every model; state comes from `module`)
# --------------------------------------------------------------------------------------------------


def _sub(gate: torch.Tensor | None, index) -> torch.Tensor | None:
    return None if gate is None else gate[index]


def drugs_attention_forward(module: nn.Module, query, key, value, attention_mask, **kwargs):
    """``AttentionInterface`` entry: rotate Q/K/V, run the model's own attention, rotate A."""
    site: _Site = module._drugs_site
    state, layer = site.state, site.layer
    if not state.layer_is_dosed(layer):
        return site.original(module, query, key, value, attention_mask, **kwargs)

    q_len, kv_len = query.shape[-2], key.shape[-2]
    q_gate = state.query_gate(q_len, kv_len, query.device)  # (b, q)

    if state.theta("Q", layer) > 0:
        query = state.rotate("Q", layer, query, _sub(q_gate, (slice(None), None, slice(None))))  # (b, h, q, d)
    for letter in ("K", "V"):
        if state.theta(letter, layer) <= 0:
            continue
        tensor = key if letter == "K" else value  # (b, kv_heads, kv, d)
        if state.config.persist_kv:
            # Rotate the new positions inside the cache's own storage so the noise is remembered.
            new = tensor[..., kv_len - q_len :, :]
            new.copy_(state.rotate(letter, layer, new, _sub(q_gate, (slice(None), None, slice(None)))))
        else:
            k_gate = state.key_gate(q_len, kv_len, tensor.device)
            tensor = state.rotate(letter, layer, tensor, _sub(k_gate, (slice(None), None, slice(None))))
            if letter == "K":
                key = tensor
            else:
                value = tensor

    attn_output, attn_weights = site.original(module, query, key, value, attention_mask, **kwargs)

    if state.theta("A", layer) > 0:
        attn_output = state.rotate("A", layer, attn_output,
                                   _sub(q_gate, (slice(None), slice(None), None)))  # (b, q, heads, d)
    return attn_output, attn_weights


def _sync_h_hook(module: nn.Module, site: _Site) -> None:
    """Hook H only into the layers that get it: a hook on every layer costs a Python call each per token."""
    wanted = site.state.thetas["H"][site.layer] > 0
    if wanted and site.hook is None:
        site.hook = module.register_forward_pre_hook(_h_pre_hook, with_kwargs=True)
    elif not wanted and site.hook is not None:
        site.hook.remove()
        site.hook = None


def _h_pre_hook(module: nn.Module, args: tuple, kwargs: dict):
    """Rotate the hidden state entering attention, one rotation per token."""
    site: _Site = module._drugs_site
    theta = site.state.theta("H", site.layer)
    if theta <= 0:
        return None
    in_args = len(args) > 0
    hidden = args[0] if in_args else kwargs["hidden_states"]  # (b, q, hidden)
    gate = site.state.query_gate(hidden.shape[1], hidden.shape[1], hidden.device)
    hidden = site.state.rotate("H", site.layer, hidden, gate)
    if in_args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


def _model_pre_hook(model: nn.Module, args: tuple, kwargs: dict):
    """Record, once per forward, where this forward's tokens sit in their sequences."""
    state: DrugsState = model._drugs_state
    tokens = kwargs.get("input_ids", args[0] if args else None)
    if tokens is None:
        tokens = kwargs.get("inputs_embeds")
    if tokens is None:
        state.forward_info = None
        return None
    q_len = tokens.shape[1]
    cache = kwargs.get("cache", kwargs.get("past_key_values"))
    offset = cache.get_seq_length() if cache is not None and hasattr(cache, "get_seq_length") else 0
    positions = kwargs.get("position_ids")
    if positions is not None and positions.dim() != 2:
        positions = None  # 3D (multimodal rope) ids: fall back to plain indices
    sober_until = state.sober_before
    if cache is not None and q_len > 1 and not state.config.dose_prompt:
        # Several tokens fed into a cache: a prompt being read. Only its last position is dosed.
        sober_until = max(sober_until, int(offset) + q_len - 1)
    state.forward_info = _ForwardInfo(offset=int(offset), q_len=q_len, positions=positions, sober_before=sober_until)
    if cache is not None:
        state.last_cache = _weak(cache)
        state.last_mask = kwargs.get("attention_mask")
        state.last_model_kwargs = {k: v for k, v in kwargs.items() if k not in _PER_FORWARD_KWARGS}
    return None


# What generate() recomputes for every forward (or what a cold shower sets itself); every other keyword a
# forward gets is the model's own (abcGPT's ``alpha``, ...) and goes into the cold shower's re-read too.
_PER_FORWARD_KWARGS = frozenset({
    "input_ids", "inputs_embeds", "attention_mask", "position_ids", "cache", "past_key_values", "use_cache",
    "cache_position", "logits_to_keep", "num_logits_to_keep", "labels", "output_attentions",
    "output_hidden_states", "return_dict",
})


def _weak(obj) -> weakref.ref | None:
    try:
        return weakref.ref(obj)
    except TypeError:
        return None


def _model_post_hook(model: nn.Module, args, output):
    model._drugs_state.forward_info = None
    return None


# --------------------------------------------------------------------------------------------------
# Finding attention and (un)injecting
# --------------------------------------------------------------------------------------------------

_SOURCE_CACHE: dict[type, bool] = {}


def _routes_through_interface(cls: type) -> bool:
    if cls not in _SOURCE_CACHE:
        try:
            source = inspect.getsource(cls.forward)
        except (OSError, TypeError):
            source = ""
        _SOURCE_CACHE[cls] = "ALL_ATTENTION_FUNCTIONS" in source or "_attn_implementation" in source
    return _SOURCE_CACHE[cls]


def find_attention_modules(model: nn.Module) -> list[nn.Module]:
    """The self-attention modules of ``model`` in layer order, or a clear error naming what was found."""
    found, lookalikes = [], []
    for _, module in model.named_modules():
        name = type(module).__name__
        if getattr(module, "is_cross_attention", False):
            continue
        if isinstance(getattr(module, "layer_idx", None), int) and _routes_through_interface(type(module)):
            found.append(module)
        elif "attention" in name.lower() and not any(isinstance(c, nn.Module) and "attention" in type(c).__name__.lower() for c in module.children()):
            lookalikes.append(name)
    if not found:
        if lookalikes:
            raise HfSteerError(
                f"attention module {lookalikes[0]} of {type(model).__name__} does not go through transformers' "
                "AttentionInterface: DRµGS needs a decoder whose attention calls ALL_ATTENTION_FUNCTIONS "
                "(transformers' own Llama, Mistral, Qwen, Gemma, Phi, GPT-2, GPT-NeoX ... do)"
            )
        raise HfSteerError(
            f"model {type(model).__name__} has no attention module DRµGS can reach: pass a transformers "
            "decoder-only causal LM"
        )
    found.sort(key=lambda m: m.layer_idx)
    return found


def _original_attention(module: nn.Module, implementation: str):
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if implementation == "eager":
        # "eager" is not in the registry: each model file defines its own eager function.
        eager = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
        if eager is None:
            raise HfSteerError(
                f"attention module {type(module).__name__} has no eager_attention_forward to wrap: "
                "load the model with attn_implementation='sdpa'"
            )
        return eager
    if implementation not in ALL_ATTENTION_FUNCTIONS:
        raise HfSteerError(
            f"attention implementation {implementation!r} of {type(module).__name__} is not registered: "
            "load the model with attn_implementation='sdpa' or 'eager'"
        )
    return ALL_ATTENTION_FUNCTIONS[implementation]


def _register_name(implementation: str) -> str:
    """Register ``drugs+<impl>`` in both interfaces (idempotent); the mask must match the original."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface

    name = _PREFIX + implementation
    AttentionInterface.register(name, drugs_attention_forward)
    if implementation in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping:
        AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[implementation])
    else:
        raise HfSteerError(
            f"attention implementation {implementation!r} has no causal-mask function in transformers: "
            "load the model with attn_implementation='sdpa' or 'eager'"
        )
    return name


def _host(model: nn.Module) -> nn.Module:
    """The transformers model inside ``model`` (itself, or e.g. the causal LM a PEFT wrapper holds)."""
    from transformers import PreTrainedModel

    for module in model.modules():
        if isinstance(module, PreTrainedModel):
            return module
    raise HfSteerError(
        f"model {type(model).__name__} holds no transformers PreTrainedModel: DRµGS switches attention with "
        "its set_attn_implementation; pass a transformers causal LM (or a PEFT model around one)"
    )


def _state(model: nn.Module) -> DrugsState | None:
    return getattr(model, "_drugs_state", None)


def inject(model: nn.Module, config: DrugsConfig | None = None, **doses: float) -> nn.Module:
    """Dose ``model`` in place and return it.

    ``inject(model, A=0.1)`` or ``inject(model, DrugsConfig(...))``. ``model`` is a transformers causal
    LM or a wrapper around one (a PEFT model). It keeps its class; ``model.Dgenerate(...)`` and
    ``model.cold_shower(...)`` are added to it, and stock ``model.generate(...)`` runs dosed.
    Injecting an already dosed model just changes its dose. Undo with :func:`remove` (or use
    :func:`dosed` as a context manager).
    """
    from .generation import cold_shower, drugs_generate

    if config is None:
        config = DrugsConfig(doses=doses)
    elif doses:
        raise HfSteerError("inject got both a config and per-type doses: put the doses in the DrugsConfig")
    if not isinstance(config, DrugsConfig):
        raise HfSteerError(f"config is a {type(config).__name__}: pass a DrugsConfig")
    if _state(model) is not None:
        model._drugs_state.set_config(config)
        return model

    modules = find_attention_modules(model)
    host = _host(model)
    if _state(host) is not None:
        raise HfSteerError(f"{type(host).__name__} inside {type(model).__name__} is already dosed: "
                           "inject into the object you dosed before, or remove() it first")
    implementations = {getattr(getattr(m, "config", None), "_attn_implementation", None) for m in modules}
    if None in implementations:
        raise HfSteerError(
            f"attention module {type(modules[0]).__name__} has no .config: DRµGS needs transformers' attention modules"
        )
    if len(implementations) > 1:
        raise HfSteerError(f"the attention modules use different implementations {sorted(implementations)}: load the "
                           "model with one attn_implementation, e.g. attn_implementation='sdpa'")
    (implementation,) = implementations
    state = DrugsState(config, num_layers=len(modules))
    sites = []
    for layer, module in enumerate(modules):
        original = _original_attention(module, implementation)
        sites.append((module, _Site(state=state, layer=layer, original=original, hook=None)))
    name = _register_name(implementation)
    host.set_attn_implementation(name)
    if host.config._attn_implementation != name:
        raise HfSteerError(f"{type(host).__name__} refused attention implementation {name!r}: DRµGS needs a decoder "
                           "whose attention goes through transformers' AttentionInterface")
    for module, site in sites:
        module._drugs_site = site
        _sync_h_hook(module, site)
    state.sites = sites
    state.original_implementation = implementation
    state.model_hooks = (
        host.register_forward_pre_hook(_model_pre_hook, with_kwargs=True),
        host.register_forward_hook(_model_post_hook),
    )
    state.host = weakref.ref(host)
    for target in {id(model): model, id(host): host}.values():
        target._drugs_state = state
    # Plain callables on the object, not a subclass: save_pretrained, type() and pickling see the model as it was.
    model.Dgenerate = types.MethodType(drugs_generate, model)
    model.cold_shower = types.MethodType(cold_shower, model)
    return model


_ATTRIBUTES = ("_drugs_state", "Dgenerate", "cold_shower")


def remove(model: nn.Module) -> nn.Module:
    """Sober ``model`` up exactly: original attention, no hooks, nothing added. Returns it."""
    state = _state(model)
    if state is None:
        return model
    host = state.host()
    for module in model.modules():
        site = getattr(module, "_drugs_site", None)
        if site is not None and site.state is state:
            if site.hook is not None:
                site.hook.remove()
            del module._drugs_site
    for hook in state.model_hooks:
        hook.remove()
    if host is not None:
        host.set_attn_implementation(state.original_implementation)
    for target in (model, host):
        for attr in _ATTRIBUTES:
            if target is not None and attr in vars(target):
                delattr(target, attr)
    return model


@contextlib.contextmanager
def dosed(model: nn.Module, config: DrugsConfig | None = None, **doses: float) -> Iterator[nn.Module]:
    """``with dosed(model, A=0.1) as m: ...`` - injected inside, exactly sober after."""
    inject(model, config, **doses)
    try:
        yield model
    finally:
        remove(model)


@contextlib.contextmanager
def sober(model: nn.Module) -> Iterator[nn.Module]:
    """Temporarily switch a dosed model's noise off (the model stays injected)."""
    state = getattr(model, "_drugs_state", None)
    if state is None:
        yield model
        return
    was = state.active
    state.active = False
    try:
        yield model
    finally:
        state.active = was


@contextlib.contextmanager
def sober_before(model: nn.Module, position: int) -> Iterator[nn.Module]:
    """Temporarily leave positions ``< position`` sober (e.g. dose only the last token of a prompt)."""
    state: DrugsState = model._drugs_state
    was = state.sober_before
    state.sober_before = position
    try:
        yield model
    finally:
        state.sober_before = was


class Drugs:
    """The original API, kept for familiarity: ``drugs.set_A_dose_theta(0.1); model = drugs.inject(model)``."""

    def __init__(self, **kwargs):
        self._doses: dict[str, dict] = {}
        self._kwargs = kwargs

    def set_dose_theta(self, letter: str, theta: float) -> None:
        self._doses.setdefault(letter, {})["theta"] = theta

    def set_dose_shape(self, letter: str, profile, method: str = "ceil") -> None:
        self._doses.setdefault(letter, {}).update(profile=profile, method=method)

    def config(self) -> DrugsConfig:
        return DrugsConfig(doses={k: dict(v) for k, v in self._doses.items()}, **self._kwargs)

    def inject(self, model: nn.Module) -> nn.Module:
        return inject(model, self.config())

    def __getattr__(self, name: str):
        # set_H_dose_theta, set_A_dose_shape, ... for each type letter
        for letter in TYPES:
            if name == f"set_{letter}_dose_theta":
                return lambda theta: self.set_dose_theta(letter, theta)
            if name == f"set_{letter}_dose_shape":
                return lambda profile, method="ceil": self.set_dose_shape(letter, profile, method)
        raise AttributeError(name)
