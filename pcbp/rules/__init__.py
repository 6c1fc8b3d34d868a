"""Learning rules, one interface: `rule(net, s_in, s_out, apply=True, trace=None) -> Updates`."""

from pcbp.rules.base import Rule
from pcbp.rules.bp import BP, AutogradSGD, autograd_updates, deltas, sgd_step
from pcbp.rules.fazil import FaZIL
from pcbp.rules.fazil_quiet import FaZILQuiet
from pcbp.rules.fixed_prediction import FixedPrediction
from pcbp.rules.il import IL
from pcbp.rules.zil import ZIL
from pcbp.rules.zil_wave import ZILWave

RULES: dict[str, type[Rule]] = {
    "bp": BP,
    "il": IL,
    "zil": ZIL,
    "zilwave": ZILWave,
    "fazil": FaZIL,
    "fazilquiet": FaZILQuiet,
    "fixedprediction": FixedPrediction,
}


def make_rule(name: str, alpha: float, **options: object) -> Rule:
    """Build a rule by name (`bp`, `il`, `zil`, `fazil`, …; any case, `-` and `_` ignored)."""
    key = name.lower().replace("-", "").replace("_", "").replace(" ", "")
    if key not in RULES:
        raise ValueError(f"unknown rule {name!r}: use one of {', '.join(RULES)}")
    return RULES[key](alpha, **options)  # type: ignore[arg-type]


__all__ = [
    "AutogradSGD", "BP", "IL", "ZIL", "ZILWave", "FaZIL", "FaZILQuiet", "FixedPrediction", "Rule", "RULES",
    "autograd_updates", "deltas", "make_rule", "sgd_step",
]
