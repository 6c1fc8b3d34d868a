"""pcbp: exact backprop in predictive coding networks (Song, Lukasiewicz, Xu & Bogacz, NeurIPS 2020).

Layer 0 is the output, layer `l_max` the input; `θ^{l+1}` maps layer `l+1` to layer `l`.
"""

from pcbp.activations import ACTIVATIONS, Activation, get_activation
from pcbp.network import PCN
from pcbp.rules import BP, IL, RULES, ZIL, FaZIL, Rule, autograd_updates, make_rule
from pcbp.trainer import History, train
from pcbp.updates import Trace, Updates

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "Activation", "BP", "FaZIL", "History", "IL", "PCN", "RULES", "Rule", "Trace",
    "Updates", "ZIL", "autograd_updates", "get_activation", "make_rule", "train",
]
