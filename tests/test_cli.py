"""`pcbp verify`: a table of claims, exit status 1 if any fails; breaking what a row checks makes it FAIL."""

import contextlib
import io
import subprocess
import sys

import pytest

import pcbp.verify
from pcbp.claims import Claim
from pcbp.cli import main
from pcbp.rules import IL, ZIL, FaZILQuiet, ZILWave
from pcbp.rules.fazil import FaZIL


@pytest.fixture(scope="module")
def verify_run():
    """One real `pcbp verify` (data rows included): its exit status, its output and the rows it measured."""
    measured, claims = [], pcbp.verify.claims

    def spy(data=True):
        measured.extend(claims(data))
        return measured

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pcbp.verify, "claims", spy)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = main(["verify"])
    return status, out.getvalue(), {r.key: r for r in measured}


def test_verify_passes_and_covers_every_rule_in_both_modes_and_the_data(verify_run):
    status, out, rows = verify_run
    assert status == 0 and "FAIL" not in out and "Fa-Z-IL (quiet) = autograd BP" in out
    assert not [r.text for r in rows.values() if not r.holds]
    for name in pcbp.verify.EXACT_RULES:
        assert {f"{name} apply=True", f"{name} apply=False"} <= set(rows)
    assert {"il fast", "il limit", "relu Fa-Z-IL apply=True", "dtype ratio", "c1 slope", "fashion files"} <= set(rows)


def test_the_command_line_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "pcbp.cli", "verify", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--no-data" in out.stdout


@pytest.fixture
def only(monkeypatch):
    """Restrict verify to some sections and exact rules (the others are checked by the full run)."""

    def restrict(sections, rules=()):
        monkeypatch.setattr(pcbp.verify, "SECTIONS", sections)
        monkeypatch.setattr(pcbp.verify, "EXACT_RULES", {k: pcbp.verify.EXACT_RULES[k] for k in ("BP", *rules)})

    return restrict


def scaled(cls, name, factor):
    """`cls` with every update it learns scaled by `factor`: a plausible slip in one rule."""
    original = cls.learn

    def learn(self, net, updates, l, eps_post, x_pre):
        original(self, net, updates, l, factor * eps_post, x_pre)

    return learn


@pytest.mark.parametrize("cls, failing", [
    (ZILWave, {"Z-IL (wave) apply=True", "Z-IL (wave) apply=False"}),
    (FaZILQuiet, {"Fa-Z-IL (quiet) apply=True", "Fa-Z-IL (quiet) apply=False", "relu Fa-Z-IL (quiet) apply=True",
                  "relu Fa-Z-IL (quiet) apply=False"}),
    (IL, {"il fast"}),
])
def test_breaking_a_rule_fails_its_rows_and_only_those(monkeypatch, only, cls, failing):
    monkeypatch.setattr(cls, "learn", scaled(cls, cls.name, 1.001))
    only((pcbp.verify._exactness, pcbp.verify._il) if cls is IL else (pcbp.verify._exactness,),
         [r.split(" apply")[0] for r in failing if not r.startswith(("relu", "il"))])
    broken = {r.key for r in pcbp.verify.claims(data=False) if not r.holds}
    assert failing <= broken and not (broken - failing - {"il limit"})


def test_breaking_the_gate_fails_the_relu_rows(monkeypatch, only):
    only((pcbp.verify._exactness,), ["Fa-Z-IL"])
    monkeypatch.setattr(FaZIL, "__init__", _with_phi("departure"))
    broken = {r.key for r in pcbp.verify.claims(data=False) if not r.holds}
    assert {"relu Fa-Z-IL apply=True", "relu Fa-Z-IL apply=False"} <= broken


def _with_phi(phi):
    original = FaZIL.__init__

    def init(self, alpha, **options):
        original(self, alpha, **options)
        if type(self) is FaZIL:
            self.phi = phi

    return init


def test_missing_data_fails_the_data_rows(monkeypatch):
    from pcbp.data import DataNotFoundError

    def missing(*args, **kwargs):
        raise DataNotFoundError("no data here")

    monkeypatch.setattr(pcbp.verify, "load_fashion_mnist", missing)
    monkeypatch.setattr(pcbp.verify, "SECTIONS", ())
    assert [r.holds for r in pcbp.verify.claims()] == [False, False]


def test_verify_exits_1_when_a_claim_fails(monkeypatch, capsys):
    bad = [Claim("ok", "ok", 1e-16, "<=", 1e-12, "book", "b"), Claim("bad", "bad", 1.0, "<=", 1e-12, "book", "b")]
    monkeypatch.setattr(pcbp.verify, "claims", lambda data=True: bad)
    assert main(["verify"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "1 passed, 1 failed" in out


def test_fetch_data_reports_missing_data(monkeypatch, tmp_path, capsys):
    import pcbp.data as data

    monkeypatch.setattr(data, "candidate_dirs", lambda name, root=None: [tmp_path])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # not the cache `make data` filled

    def no_download(*args, **kwargs):
        raise OSError("no network in tests")

    monkeypatch.setattr(data, "download_file", no_download)
    assert main(["fetch-data", "mnist"]) == 1
    assert "pcbp fetch-data" in capsys.readouterr().err


def test_zil_row_fails_when_zil_breaks_c2(monkeypatch, only):
    only((pcbp.verify._exactness,), ["Z-IL"])
    monkeypatch.setattr(ZIL, "steps_of", lambda self, l_max: {l: (l_max - 1,) for l in range(l_max)})
    broken = {r.key for r in pcbp.verify.claims(data=False) if not r.holds}
    assert {"Z-IL apply=True", "Z-IL apply=False", "relu Z-IL apply=True"} <= broken
