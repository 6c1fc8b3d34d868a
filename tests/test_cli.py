"""`pcbp verify`: a table of claims, exit status 1 if any fails."""

import subprocess
import sys

import pcbp.verify
from pcbp.cli import main
from pcbp.verify import Claim


def test_verify_prints_the_table_and_passes():
    out = subprocess.run([sys.executable, "-m", "pcbp.cli", "verify"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Z-IL updates = BP" in out.stdout and "Fa-Z-IL" in out.stdout
    assert out.stdout.count("PASS") == 9 and "FAIL" not in out.stdout


def test_verify_exits_1_when_a_claim_fails(monkeypatch, capsys):
    monkeypatch.setattr(pcbp.verify, "claims", lambda: [Claim("ok", 1e-16, 1e-12), Claim("bad", 1.0, 1e-12)])
    assert main(["verify"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "1 passed, 1 failed" in out


def test_claim_bounds_work_both_ways():
    assert Claim("x", 1e-13, 1e-12).holds and not Claim("x", 1e-11, 1e-12).holds
    assert Claim("x", 1e7, 1e6, at_most=False).holds and not Claim("x", 1e5, 1e6, at_most=False).holds


def test_fetch_data_reports_missing_data(monkeypatch, tmp_path, capsys):
    import pcbp.data as data

    monkeypatch.setattr(data, "candidate_dirs", lambda name, root=None: [tmp_path])

    def no_download(*args, **kwargs):
        raise OSError("no network in tests")

    monkeypatch.setattr(data, "download_file", no_download)
    assert main(["fetch-data", "mnist"]) == 1
    assert "pcbp fetch-data" in capsys.readouterr().err
