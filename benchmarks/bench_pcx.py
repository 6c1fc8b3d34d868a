"""IL in pcbp (PyTorch) against IL in pcx (JAX), the same network and mini-batch, side by side.

    python benchmarks/bench_pcx.py --pcbp-python .venv/bin/python --pcx-python .venv-pcx/bin/python

torch and JAX live in different virtual environments, so each side runs in a worker process with
its own interpreter; this script (standard library and NumPy) drives both over pipes. Both workers load the same
weights and batch, warm up (pcx: JIT compilation), then time one IL update per call, in rounds
that alternate which side goes first; the report gives medians with quartiles, the ratio
pcbp/pcx, and checks that both did the same computation (energy at every relaxation step and the
weight updates of one IL update from the same start). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = (784, 256, 256, 10)  # input first, as pcx builds it; pcbp's PCN takes the reverse (output first)
BATCH, GAMMA, ALPHA = 64, 0.1, 0.01
TARGET = 0.6  # pcbp's time per update should be at most this fraction of pcx's


# The shared problem ###################################################################################


def make_problem(path: Path, *, seed: int, bias: bool) -> None:
    """Weights `θ ~ N(0, 1/n_in)`, biases 0.1·N(0, 1) if any, inputs in [0, 1), one-hot targets."""
    import numpy as np

    rng = np.random.default_rng(seed)
    arrays = {}
    for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):  # pcx's layer i = pcbp's θ^{l_max − i}
        arrays[f"W{i}"] = (rng.standard_normal((n_out, n_in)) / n_in**0.5).astype(np.float32)
        if bias:
            arrays[f"b{i}"] = (0.1 * rng.standard_normal(n_out)).astype(np.float32)
    arrays["s_in"] = rng.random((BATCH, SIZES[0]), dtype=np.float32)
    arrays["s_out"] = np.eye(SIZES[-1], dtype=np.float32)[rng.integers(0, SIZES[-1], BATCH)]
    np.savez(path, **arrays)


# pcbp worker ##########################################################################################


class PcbpSide:
    def __init__(self, data: Path, float64: bool = False) -> None:
        import numpy as np
        import torch

        from pcbp.rules import IL

        self.torch, self.np, self.IL = torch, np, IL
        self.dtype = torch.float64 if float64 else torch.float32
        self.data = {k: torch.from_numpy(v).to(self.dtype) for k, v in np.load(data).items()}
        self.bias = "b0" in self.data
        self.s_in, self.s_out = self.data["s_in"], self.data["s_out"]
        self.net = self.fresh_net()
        self.rules: dict[int, object] = {}

    def fresh_net(self):
        from pcbp.network import PCN

        net = PCN(SIZES[::-1], "tanh", bias=self.bias, dtype=self.dtype)
        L = net.l_max
        for i in range(L):
            net.theta[L - i].copy_(self.data[f"W{i}"])
            if self.bias:
                net.b[L - i].copy_(self.data[f"b{i}"])
        return net

    def update(self, T: int) -> None:
        rule = self.rules.setdefault(T, self.IL(ALPHA, gamma=GAMMA, T=T))
        rule(self.net, self.s_in, self.s_out)

    def check(self, T: int, out: str) -> None:
        from pcbp.updates import Trace

        net, trace = self.fresh_net(), Trace()
        upd = self.IL(ALPHA, gamma=GAMMA, T=T)(net, self.s_in, self.s_out, apply=False, trace=trace)
        L = net.l_max
        deltas = {f"dW{i}": upd.theta[L - i].numpy() for i in range(L)}
        deltas |= {f"db{i}": upd.b[L - i].numpy() for i in range(L) if self.bias}
        self.np.savez(out, energies=trace.energies().numpy(), **deltas)

    def info(self) -> dict:
        import torch

        return {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                "torch_blas": "MKL" if torch.backends.mkl.is_available() else "other"}


# pcx worker ###########################################################################################


class PcxSide:
    """IL written the way pcx's own examples write a training step (pcx 0.6.3, `train_on_batch`).

    The model applies `f` *before* each weight, `u = W f(h_below)`, so its energy is pcbp's
    `F = Σ ½‖x^l − θ^{l+1} f(x^{l+1})‖²` (pcx examples usually write `f(W h)`, a different
    network with the same amount of work); the value nodes' energy is summed over the batch
    (`psum`, as in pcx's examples), so SGD at rate γ on it is pcbp's per-sample step, and the
    weight gradient is scaled by 1/batch, pcbp's batch mean.
    """

    def __init__(self, data: Path, float64: bool = False) -> None:
        import jax

        jax.config.update("jax_enable_x64", float64)
        import jax.numpy as jnp
        import numpy as np
        import optax
        import pcx as px
        import pcx.functional as pxf
        import pcx.nn as pxnn
        import pcx.predictive_coding as pxc
        import pcx.utils as pxu

        self.jax, self.jnp, self.np, self.optax = jax, jnp, np, optax
        self.pxc, self.pxnn, self.pxu = pxc, pxnn, pxu
        self.dtype = jnp.float64 if float64 else jnp.float32
        self.data = {k: jnp.asarray(v, dtype=self.dtype) for k, v in np.load(data).items()}
        self.bias = "b0" in self.data

        class Model(pxc.EnergyModule):
            def __init__(self, sizes, act_fn, bias):
                super().__init__()
                self.act_fn = px.static(act_fn)
                self.layers = [pxnn.Linear(a, b, bias=bias) for a, b in zip(sizes[:-1], sizes[1:])]
                self.vodes = [pxc.Vode() for _ in sizes[1:]]
                self.vodes[-1].h.frozen = True  # the output node is clamped to the target

            def __call__(self, x, y):
                for vode, layer in zip(self.vodes, self.layers):
                    x = vode(layer(self.act_fn(x)))
                if y is not None:
                    self.vodes[-1].set("h", y)
                return self.vodes[-1].get("u")

        vode_axes = pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0))

        @pxf.vmap(vode_axes, in_axes=(0, 0), out_axes=0)
        def forward(x, y, *, model):
            return model(x, y)

        @pxf.vmap(vode_axes, in_axes=(0,), out_axes=(None, 0), axis_name="batch")
        def energy(x, *, model):
            y_ = model(x, None)
            return jax.lax.psum(model.energy(), "batch"), y_

        @pxf.jit(static_argnums=0)
        def train_on_batch(T, x, y, *, model, optim_w, optim_h):
            model.train()
            with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
                forward(x, y, model=model)  # feedforward start, output clamped to y
            optim_h.init(pxu.M_hasnot(pxc.VodeParam, frozen=True)(model))
            energies = []
            for _ in range(T):  # T inference steps: SGD at rate γ on the value nodes
                with pxu.step(model, clear_params=pxc.VodeParam.Cache):
                    (e, _), g = pxf.value_and_grad(
                        pxu.M_hasnot(pxc.VodeParam, frozen=True).to([False, True]), has_aux=True
                    )(energy)(x, model=model)
                optim_h.step(model, g["model"])
                energies.append(e)
            optim_h.clear()
            with pxu.step(model, clear_params=pxc.VodeParam.Cache):  # one weight update
                (e, _), g = pxf.value_and_grad(pxu.M(pxnn.LayerParam).to([False, True]), has_aux=True)(energy)(
                    x, model=model
                )
            optim_w.step(model, g["model"], scale_by=1.0 / x.shape[0])
            energies.append(e)
            return jnp.stack(energies)

        self.Model, self.forward, self.train_on_batch = Model, forward, train_on_batch
        self.s_in, self.s_out = self.data["s_in"], self.data["s_out"]
        self.model, self.optim_w, self.optim_h = self.fresh_model()

    def fresh_model(self):
        jnp, pxc, pxu, optax = self.jnp, self.pxc, self.pxu, self.optax
        model = self.Model(SIZES, jnp.tanh, self.bias)
        for i, layer in enumerate(model.layers):
            layer.nn.weight.set(self.data[f"W{i}"])
            if self.bias:
                layer.nn.bias.set(self.data[f"b{i}"])
        with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
            self.forward(self.s_in, None, model=model)
            optim_h = pxu.Optim(lambda: optax.sgd(GAMMA))
            optim_w = pxu.Optim(lambda: optax.sgd(ALPHA), pxu.M(self.pxnn.LayerParam)(model))
        return model, optim_w, optim_h

    def weights(self, model) -> dict:
        out = {f"W{i}": self.np.asarray(layer.nn.weight.get()) for i, layer in enumerate(model.layers)}
        if self.bias:
            out |= {f"b{i}": self.np.asarray(layer.nn.bias.get()) for i, layer in enumerate(model.layers)}
        return out

    def update(self, T: int) -> None:
        e = self.train_on_batch(T, self.s_in, self.s_out, model=self.model, optim_w=self.optim_w,
                                optim_h=self.optim_h)
        self.jax.block_until_ready((e, [layer.nn.weight.get() for layer in self.model.layers]))

    def check(self, T: int, out: str) -> None:
        model, optim_w, optim_h = self.fresh_model()
        before = self.weights(model)
        e = self.train_on_batch(T, self.s_in, self.s_out, model=model, optim_w=optim_w, optim_h=optim_h)
        after = self.weights(model)
        deltas = {f"d{k}": after[k] - before[k] for k in before}
        self.np.savez(out, energies=self.np.asarray(e) / BATCH, **deltas)  # pcbp's F is a batch mean

    def info(self) -> dict:
        import importlib.metadata as md

        return {"jax": self.jax.__version__, "jaxlib": md.version("jaxlib"), "pcx": md.version("pcx"),
                "jax_devices": [str(d) for d in self.jax.devices()],
                "xla_flags": os.environ.get("XLA_FLAGS", "")}


def worker(side: str, data: Path, float64: bool) -> None:
    """Answer one JSON command per line on stdin with one JSON line on stdout."""
    impl = (PcbpSide if side == "pcbp" else PcxSide)(data, float64)
    reply = {"ready": True, "info": impl.info() | {"python": platform.python_version(),
                                                   "affinity": sorted(os.sched_getaffinity(0))}}
    print(json.dumps(reply), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "quit":
            break
        if cmd["cmd"] == "check":
            impl.check(cmd["T"], cmd["out"])
            print(json.dumps({"ok": True}), flush=True)
            continue
        times = []
        for _ in range(cmd["n"]):
            start = time.perf_counter()
            impl.update(cmd["T"])
            times.append(time.perf_counter() - start)
        print(json.dumps({"times": times}), flush=True)


# Driver ###############################################################################################


class Worker:
    def __init__(self, side: str, python: str, data: Path, cpus: list[int] | None, float64: bool = False) -> None:
        env = dict(os.environ)
        if cpus is not None:  # same cores, same thread count on both sides
            n = str(len(cpus))
            env |= {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}
            if len(cpus) == 1:
                env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                                    " intra_op_parallelism_threads=1").strip()
        python = os.path.abspath(python) if os.sep in python else python  # the workers start in the repository
        cmd = [python, os.path.abspath(__file__), "--worker", side, "--data", str(data)] + ["--float64"] * float64
        self.side, self.python = side, python
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                     cwd=Path(__file__).resolve().parent.parent,
                                     preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        self.info = self.read()["info"]

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.side} worker stopped (its error is above)")
        return json.loads(line)

    def ask(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        try:
            self.proc.stdin.write('{"cmd": "quit"}\n')
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        self.proc.wait(timeout=60)


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    return tuple(statistics.quantiles(xs, n=4)) if len(xs) > 1 else (xs[0],) * 3


def compare(workers: dict[str, Worker], T: int, tmp: Path, dtype: str) -> dict:
    """One IL update from the same start on both sides: energies per step and weight updates."""
    import numpy as np

    files = {}
    for side, w in workers.items():
        files[side] = tmp / f"check_{side}_{T}_{dtype}.npz"
        w.ask(cmd="check", T=T, out=str(files[side]))
    a, b = (dict(np.load(files[s])) for s in ("pcbp", "pcx"))
    Fa, Fb = a.pop("energies"), b.pop("energies")
    upd = {k: float(np.linalg.norm(a[k] - b[k]) / np.linalg.norm(a[k])) for k in sorted(a)}
    return {"T": T, "dtype": dtype, "F_pcbp": [float(Fa[0]), float(Fa[-1])], "F_pcx": [float(Fb[0]), float(Fb[-1])],
            "energy_max_rel_diff": float(np.max(np.abs(Fa - Fb)) / float(Fa[0])),
            "update_rel_diff": upd}


def machine() -> dict:
    """pcbp's machine line (CPU, cores, threads, versions) plus the load and the platform."""
    from pcbp.benchmark import machine as pcbp_machine  # the main process runs where pcbp is installed

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {**pcbp_machine(), "loadavg_at_start": load, "platform": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pcbp-python", default=sys.executable, help="interpreter with torch and pcbp")
    p.add_argument("--pcx-python", default=".venv-pcx/bin/python", help="interpreter with pcx==0.6.3 and JAX")
    p.add_argument("--T", type=int, nargs="+", default=[20, 100], help="relaxation steps per update")
    p.add_argument("--rounds", type=int, default=10, help="rounds; each times every side and T once")
    p.add_argument("--per-round", type=int, default=5, help="updates timed per side, T and round")
    p.add_argument("--warmup", type=int, default=3, help="untimed updates per side and T (pcx compiles here)")
    p.add_argument("--cpus", type=str, default=None, help="pin both sides to these cores, e.g. 0 or 0,1 "
                   "(threads = their number); default: each library's own thread settings")
    p.add_argument("--bias", action="store_true", help="give every layer a bias (pcbp's default is none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-float64-check", action="store_true", help="skip the float64 run that checks both sides "
                   "compute the same update")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--worker", choices=["pcbp", "pcx"], help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--float64", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args.worker, args.data, args.float64)
        return 0

    cpus = [int(c) for c in args.cpus.split(",")] if args.cpus else None
    host = machine()  # before the workers start: the load average is other people's
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = tmp / "problem.npz"
        make_problem(data, seed=args.seed, bias=args.bias)
        workers = {side: Worker(side, py, data, cpus) for side, py in
                   (("pcbp", args.pcbp_python), ("pcx", args.pcx_python))}
        try:
            result = measure(workers, args, tmp)
        finally:
            for w in workers.values():
                w.close()
        if not args.no_float64_check:  # rounding apart, are they the same computation? (fresh workers)
            checkers = {side: Worker(side, w.python, data, cpus, float64=True) for side, w in workers.items()}
            try:
                result["checks"] += [compare(checkers, T, tmp, "float64") for T in args.T]
            finally:
                for w in checkers.values():
                    w.close()
    result["machine"] = host | {"pinned_cpus": cpus, "pcbp_side": workers["pcbp"].info,
                                     "pcx_side": workers["pcx"].info}
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


def measure(workers: dict[str, Worker], args, tmp: Path) -> dict:
    sides = list(workers)
    t0 = time.perf_counter()
    for T in args.T:
        for w in workers.values():
            w.ask(cmd="time", T=T, n=args.warmup)
    warmup_s = time.perf_counter() - t0
    times = {(s, T): [] for s in sides for T in args.T}
    round_ratios = {T: [] for T in args.T}
    for r in range(args.rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        for T in (args.T if r % 2 == 0 else args.T[::-1]):
            got = {s: workers[s].ask(cmd="time", T=T, n=args.per_round)["times"] for s in order}
            for s in sides:
                times[(s, T)] += got[s]
            round_ratios[T].append(statistics.median(got["pcbp"]) / statistics.median(got["pcx"]))
    rows = []
    for T in args.T:
        row = {"T": T}
        for s in sides:
            q1, med, q3 = quartiles(times[(s, T)])
            row[s] = {"median_ms": 1e3 * med, "q1_ms": 1e3 * q1, "q3_ms": 1e3 * q3,
                      "per_step_us": 1e6 * med / T, "n": len(times[(s, T)])}
        row["ratio"] = row["pcbp"]["median_ms"] / row["pcx"]["median_ms"]
        rr = sorted(round_ratios[T])
        row["round_ratio"] = {"median": statistics.median(rr), "min": rr[0], "max": rr[-1]}
        rows.append(row)
    marginal = None
    if len(args.T) >= 2:
        lo, hi = min(args.T), max(args.T)
        marginal = {s: 1e3 * (next(r[s]["median_ms"] for r in rows if r["T"] == hi)
                              - next(r[s]["median_ms"] for r in rows if r["T"] == lo)) / (hi - lo) for s in sides}
        marginal["ratio"] = marginal["pcbp"] / marginal["pcx"]
        marginal["between"] = [lo, hi]
    checks = [compare(workers, T, tmp, "float32") for T in args.T]
    return {"config": {"sizes": SIZES, "batch": BATCH, "gamma": GAMMA, "alpha": ALPHA, "activation": "tanh",
                       "dtype": "float32", "bias": args.bias, "rounds": args.rounds, "per_round": args.per_round,
                       "warmup": args.warmup, "warmup_s": warmup_s},
            "rows": rows, "marginal_us_per_step": marginal, "checks": checks, "target_ratio": TARGET}


def report(res: dict) -> str:
    m, c = res["machine"], res["config"]
    lines = [f"IL update, {'-'.join(map(str, c['sizes']))} tanh, batch {c['batch']}, γ = {c['gamma']}, "
             f"float32, CPU{' with biases' if c['bias'] else ''}",
             f"machine: {m['cpu']}, {m['cores']} cores, load average at start "
             f"{', '.join(f'{v:.2f}' for v in m['loadavg_at_start'] or ())}, "
             f"pinned to {m['pinned_cpus'] or 'nothing'}",
             f"pcbp: torch {m['pcbp_side']['torch']}, {m['pcbp_side']['torch_threads']} threads, Python "
             f"{m['pcbp_side']['python']};  pcx {m['pcx_side']['pcx']}: jax {m['pcx_side']['jax']}, "
             f"jaxlib {m['pcx_side']['jaxlib']}, Python {m['pcx_side']['python']}",
             f"{c['rounds']} interleaved rounds × {c['per_round']} updates per side and T "
             f"(after {c['warmup']} warm-up updates each, {c['warmup_s']:.0f} s with pcx's compilation)", "",
             f"{'T':>4} {'pcbp ms/update [q1, q3]':>28} {'pcx ms/update [q1, q3]':>28} "
             f"{'pcbp µs/step':>13} {'pcx µs/step':>12} {'pcbp/pcx':>9} {'per-round ratio [min, max]':>28}"]
    for r in res["rows"]:
        a, b, rr = r["pcbp"], r["pcx"], r["round_ratio"]
        lines.append(f"{r['T']:>4} {a['median_ms']:>10.2f} [{a['q1_ms']:6.2f}, {a['q3_ms']:6.2f}]"
                     f" {b['median_ms']:>11.2f} [{b['q1_ms']:6.2f}, {b['q3_ms']:6.2f}]"
                     f" {a['per_step_us']:>13.0f} {b['per_step_us']:>12.0f} {r['ratio']:>9.2f}"
                     f" {rr['median']:>11.2f} [{rr['min']:.2f}, {rr['max']:.2f}]")
    mg = res["marginal_us_per_step"]
    if mg:
        lines.append(f"marginal cost of one more relaxation step (T = {mg['between'][0]} → {mg['between'][1]}): "
                     f"pcbp {mg['pcbp']:.0f} µs, pcx {mg['pcx']:.0f} µs, ratio {mg['ratio']:.2f}")
    worst = max(r["ratio"] for r in res["rows"])
    lines.append(f"target pcbp/pcx ≤ {res['target_ratio']}: "
                 + ("met" if worst <= res["target_ratio"] else f"NOT met (worst ratio {worst:.2f})"))
    lines.append("")
    for ch in res["checks"]:
        upd = ", ".join(f"{k} {v:.1e}" for k, v in ch["update_rel_diff"].items())
        lines.append(f"same work, {ch['dtype']}, T = {ch['T']}: F from {ch['F_pcbp'][0]:.4f} to "
                     f"{ch['F_pcbp'][1]:.4f} (pcbp), {ch['F_pcx'][0]:.4f} to {ch['F_pcx'][1]:.4f} (pcx); "
                     f"max |ΔF_t| / F_0 = "
                     f"{ch['energy_max_rel_diff']:.1e}; update ‖Δpcbp − Δpcx‖ / ‖Δpcbp‖: {upd}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
