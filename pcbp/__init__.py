"""pcbp: exact backprop in predictive coding networks (Song, Lukasiewicz, Xu & Bogacz, NeurIPS 2020).

Layer 0 is the output, layer `l_max` the input; `θ^{l+1}` maps layer `l+1` to layer `l`.
"""

from pcbp.activations import ACTIVATIONS, Activation, get_activation
from pcbp.network import PCN
from pcbp.rules import (
    BP,
    IL,
    RULES,
    ZIL,
    AutogradSGD,
    FaZIL,
    FaZILQuiet,
    Rule,
    ZILWave,
    autograd_updates,
    make_rule,
    sgd_step,
)
from pcbp.trainer import History, train
from pcbp.updates import Trace, Updates

__version__ = "0.2.0"

__all__ = [
    "ACTIVATIONS", "Activation", "AutogradSGD", "BP", "FaZIL", "FaZILQuiet", "History", "IL", "PCN", "RULES", "Rule",
    "Trace", "Updates", "ZIL", "ZILWave", "autograd_updates", "get_activation", "make_rule", "sgd_step", "train",
]
