"""Training in mixed precision on CPUs that have bfloat16 instructions, saving float32.

``train.precision = "mixed_bfloat16"`` trains a copy of the model whose layers compute in
bfloat16 (their weights stay float32), except the input standardisation and the last
layer (the softmax), which stay float32 so that the loss sees float32 probabilities.
The trained weights are then copied back into the float32 model, which is what is
evaluated, saved and served: the same architecture and file as a float32 run, portable
to any machine.  ``"auto"`` picks ``mixed_bfloat16`` only where the CPU says it has
AVX-512 BF16 or AMX BF16 (``/proc/cpuinfo``); elsewhere bfloat16 would be emulated, slowly.
"""

from __future__ import annotations

from pathlib import Path

PRECISIONS = ("float32", "mixed_bfloat16", "auto")
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
KEEP_FLOAT32 = frozenset({"per_band_standardize"})
"""Layers that stay float32 besides the last one (their statistics are dB-scale values)."""


def cpu_has_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether the CPU lists an instruction set that computes bfloat16 natively."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool(BF16_CPU_FLAGS & set(line.split(":", 1)[-1].split()))
    return False


def resolve_precision(setting: str, cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """``"float32"`` or ``"mixed_bfloat16"`` for a ``train.precision`` setting."""
    if setting not in PRECISIONS:
        raise ValueError(f"train.precision must be one of {list(PRECISIONS)}, not {setting!r}")
    if setting == "auto":
        return "mixed_bfloat16" if cpu_has_bf16(cpuinfo) else "float32"
    return setting


def mixed_copy(model, policy: str = "mixed_bfloat16"):
    """A copy of a functional Keras ``model`` whose layers compute in ``policy``, with
    ``model``'s weights; the input standardisation and the last layer stay float32.

    Raises ValueError for a model that nests another model or wraps a layer (``conv1d``'s
    frame network in a ``TimeDistributed``, an ensemble): the inner layers would keep
    their own policy.
    """
    import keras

    nested = [
        layer.name
        for layer in model.layers
        if isinstance(layer, keras.Model | keras.layers.Wrapper)
    ]
    if nested:
        raise ValueError(f"{model.name}: mixed precision needs a flat model; nests {nested}")
    last = model.layers[-1].name

    def clone(layer):
        config = layer.get_config()
        if layer.name != last and layer.name not in KEEP_FLOAT32:
            config["dtype"] = policy
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy
