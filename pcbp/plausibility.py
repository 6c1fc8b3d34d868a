"""What each learning rule needs, side by side: the reviewers' "less plausible than IL?" (§8).

One `Needs` per protocol, written from its implementation and naming it (`source`): the phases a
sample goes through, the signals every node must receive at the same moment, what one synapse
reads, whether a layer must know the step number (a clock), and what must converge first. The
shared signals of the two Fa-Z-IL gates are not typed here: they are read from `pcbp.stream`'s
table of what Φ reads (`shared_inputs`). `steps_per_sample` measures the other column: inference
steps per sample for an update within `d` of BP's, settling included (`pcbp.protocol`).
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass

import torch

from pcbp.network import PCN
from pcbp.protocol import cost_per_sample
from pcbp.stream import min_steps, shared_inputs

Tensor = torch.Tensor


@dataclass(frozen=True)
class Needs:
    """What a protocol needs per sample, with the code it is read from (`module.attribute`, comma-separated)."""

    rule: str
    phases: str
    shared: tuple[str, ...]
    synapse_reads: str
    clock: str
    waits_for: str
    source: str


def needs() -> list[Needs]:
    """The table's rows: IL, Z-IL, Fa-Z-IL (re-armed per presentation), Fa-Z-IL on a stream, fixed-prediction PC."""
    return [
        Needs("IL", "one: input and output together, T relaxation steps",
              ("the end of relaxation: every weight learns at step T",),
              "ε^l_T and f(x^{l+1}_T): its own error node and presynaptic activity, at the end",
              "no (one shared learning moment)", "the joint relaxation to IL's equilibrium (T steps)",
              "pcbp.rules.il.IL.run"),
        Needs("Z-IL", "two: input alone until settled (C1), then the output",
              ("the output's clamp onset (t = 0)", "a clock: layer l learns at step t = l (C2)"),
              "ε^l_t and f(x^{l+1}_t) at t = l",
              "yes: layer l must know t = l", "the free network, to the feedforward pass (C1)",
              "pcbp.rules.zil.ZIL.run, pcbp.protocol.zil_from"),
        Needs("Fa-Z-IL", "two: input alone until settled (C1), then the output",
              tuple(shared_inputs("fazil")),
              "Φ(ε^l_t) f(x^{l+1}_t) at every step; Φ reads the node's own error, prediction now and a step "
              "ago, its arming bit and whether its own feedback moved it",
              "no", "the free network, to the feedforward pass (C1)",
              "pcbp.rules.fazil.FaZIL.run, pcbp.rules.fazil.phi_gate, pcbp.stream.phi_inputs"),
        Needs("Fa-Z-IL, self-arming stream", "two per sample, no reset: input alone N steps, input and target M",
              tuple(shared_inputs("stream")),
              "as Fa-Z-IL; the gate arms from the node's own quiet history",
              "no", "the free network's dead-beat sweep (l_max steps at γ = 1), then k_arm still steps",
              "pcbp.stream.run_stream, pcbp.stream.self_arming_gate, pcbp.stream.min_steps"),
        Needs("fixed-prediction PC", "two: the feedforward pass (stored), then the output",
              ("the stored feedforward pass: every μ^l and f'(y^l) held for the whole relaxation",
               "the end of relaxation: every weight learns at step T"),
              "ε^l_T and f(y^{l+1}): its own error node and the stored presynaptic activity",
              "no (one shared learning moment)", "the feedforward pass (C1), then T ≥ l_max − 1 steps at η = 1",
              "pcbp.rules.fixed_prediction.FixedPrediction.run"),
    ]


def resolve(path: str) -> object:
    """The object a `source` entry names (`pkg.module.Class.attr`), or an error naming the missing part."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                raise AttributeError(f"{path}: {'.'.join(parts[:cut])} has no {'.'.join(parts[cut:])}")
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(f"{path}: no module of pcbp holds it")


def table() -> list[dict[str, str]]:
    """`needs()` as rows for `pandas.DataFrame`: the shared signals joined, "none" where there are none."""
    rows = []
    for row in needs():
        d = asdict(row)
        d["shared"] = "; ".join(row.shared) if row.shared else "none"
        rows.append(d)
    return rows


def steps_per_sample(
    net: PCN, s_in: Tensor, s_out: Tensor, target: float, *, k_arm: int, max_k: int = 5000, max_T: int = 2000
) -> tuple[dict[str, int | None], float]:
    """Inference steps per sample for an update within relative error `target` of autograd BP's, and
    IL's best error over its scan (IL's equilibrium is not BP: where that is above `target`, IL's
    entries are `None`).

    Z-IL and Fa-Z-IL: settling steps from rest plus the `l_max` of the wave; IL: relaxation steps
    from rest (input and output together) and from the feedforward pass (which assumes C1);
    fixed-prediction PC at `η = 1`: Z-IL's settling (it needs the same settled pass, stored) plus
    its `l_max − 1` steps; the stream: `N + M` of `min_steps` (its free phase is the gated, dead-beat
    sweep, `l_max` steps at γ = 1; the others settle by energy descent at `1/λ_max`, as in
    `cost_per_sample`). `None`: not reached within the scan.
    """
    row = cost_per_sample(net, s_in, s_out, (target,), max_k=max_k, max_T=max_T)[0]
    k_zil = row["zil_k"]
    N, M = min_steps(net, k_arm)
    steps = {
        "IL (from rest)": row["il_rest_T"], "IL (from the feedforward pass)": row["il_T"],
        "Z-IL": row["zil_steps"], "Fa-Z-IL": row["fazil_steps"],
        "Fa-Z-IL, self-arming stream": N + M,
        "fixed-prediction PC": None if k_zil is None else k_zil + net.l_max - 1,
    }
    return steps, min(row["il_best"], row["il_rest_best"])
