"""Fashion-MNIST, held in memory as tensors.

The course loads each split once, as ``uint8`` images of shape (N, 28, 28) and ``int64``
labels of shape (N,), and slices batches straight from those tensors: no per-image
transform inside a training loop.

Where the four IDX files come from, first match wins:

1. an explicit ``root`` argument, or the ``FASHIONDIFF_DATA`` environment variable;
2. torchvision's layout in the course's cache directory (``~/.cache/fashiondiff``);
3. Debian's ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``);
4. torchvision's download, into the cache directory.

A folder may hold the files flat (``root/train-images-idx3-ubyte.gz``, as Debian ships them)
or in torchvision's layout (``root/FashionMNIST/raw/...``); gzipped or not.
"""

from __future__ import annotations

import difflib
import gzip
import operator
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_VAR = "FASHIONDIFF_DATA"

# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT")
_IDX_DTYPES = {0x08: torch.uint8, 0x09: torch.int8, 0x0B: torch.int16, 0x0C: torch.int32,
               0x0D: torch.float32, 0x0E: torch.float64}


class DataError(ValueError):
    """A data file is missing, truncated or not an IDX file."""


class DataNotFound(DataError):
    """No source of Fashion-MNIST could be found or downloaded."""


def class_index(name_or_index: str | int) -> int:
    """Index of a class given its name (case-insensitive, e.g. ``"sneaker"``) or its index.

    Raises ``ValueError`` that suggests the closest name for a typo (``"Sneakers"`` -> ``"Sneaker"``).
    """
    if not isinstance(name_or_index, str) or name_or_index.strip().isdigit():
        try:                                     # int, numpy or 0-d tensor integers, "7"
            i = int(name_or_index) if isinstance(name_or_index, str) else operator.index(name_or_index)
        except TypeError:
            raise ValueError(f"a class is a name or an integer index, not {name_or_index!r}") from None
        if isinstance(name_or_index, bool):
            raise ValueError("a class is a name or an integer index, not a bool")
        if not 0 <= i < len(CLASSES):
            raise ValueError(f"class index {i} is out of range 0..{len(CLASSES) - 1}")
        return i
    lowered = [c.lower() for c in CLASSES]
    key = name_or_index.strip().lower()
    aliases = {"t-shirt": 0, "tshirt": 0, "top": 0, "boot": 9}
    if key in lowered:
        return lowered.index(key)
    if key in aliases:
        return aliases[key]
    close = difflib.get_close_matches(key, lowered, n=1, cutoff=0.5)
    hint = f"; did you mean {CLASSES[lowered.index(close[0])]!r}?" if close else ""
    raise ValueError(f"unknown class {name_or_index!r}{hint} (allowed: {', '.join(CLASSES)}, or 0-9)")


def read_idx(path: str | Path) -> torch.Tensor:
    """Read one IDX file (optionally gzipped) into a tensor of the shape its header declares."""
    path = Path(path)
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError; a cut .gz raises EOFError
        raise DataError(f"{path}: cannot read ({e}); delete it and fetch it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number); delete it and fetch it again")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header; delete it and fetch it again")
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    itemsize = torch.empty((), dtype=dtype).element_size()
    expected = itemsize * int(torch.tensor(shape).prod()) if shape else itemsize
    if len(raw) - header != expected:
        raise DataError(f"{path}: truncated or corrupt: header says {shape} ({expected} bytes), "
                        f"file holds {len(raw) - header}; delete it and fetch it again")
    data = torch.frombuffer(bytearray(raw[header:]), dtype=dtype)
    if itemsize > 1:  # IDX is big-endian
        data = data.view(torch.uint8).view(-1, itemsize).flip(1).reshape(-1).view(dtype)
    return data.reshape(shape)


def _find_file(folder: Path, stem: str) -> Path | None:
    for sub in (folder, folder / "FashionMNIST" / "raw"):
        for name in (stem + ".gz", stem):
            if (sub / name).is_file():
                return sub / name
    return None


def _folder_has_split(folder: Path, split: str) -> bool:
    return all(_find_file(folder, stem) is not None for stem in FILES[split])


def cache_dir() -> Path:
    """The course's cache directory (``$XDG_CACHE_HOME/fashiondiff`` or ``~/.cache/fashiondiff``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fashiondiff"


def find_source(split: str = "train", root: str | Path | None = None, download: bool = True) -> Path:
    """The folder that holds ``split``, following the order in the module docstring."""
    if split not in FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    explicit = root or os.environ.get(ENV_VAR)
    if explicit:
        folder = Path(explicit).expanduser()
        if not _folder_has_split(folder, split):
            origin = "root" if root else f"${ENV_VAR}"
            raise DataNotFound(f"{origin}={folder} does not hold the Fashion-MNIST {split} files "
                               f"({', '.join(s + '.gz' for s in FILES[split])})")
        return folder
    for folder in (cache_dir(), DEBIAN_DIR):
        if _folder_has_split(folder, split):
            return folder
    if download:
        try:
            from torchvision.datasets import FashionMNIST
            FashionMNIST(str(cache_dir()), train=(split == "train"), download=True)
        except Exception as e:  # no network, a proxy, a half-written file ...
            raise DataNotFound(_remedies(f"download failed ({type(e).__name__}: {e})")) from None
        if _folder_has_split(cache_dir(), split):
            return cache_dir()
    raise DataNotFound(_remedies("no local copy found and download is off"))


def _remedies(why: str) -> str:
    return (f"Fashion-MNIST not available: {why}. Do one of: (1) on Debian/Ubuntu, "
            f"`sudo apt-get install dataset-fashion-mnist`; (2) copy the four *-ubyte.gz files into a folder "
            f"and set {ENV_VAR}=/that/folder; (3) go online once so torchvision can download them into "
            f"{cache_dir()}.")


@dataclass(frozen=True)
class Split:
    """One split in memory: ``images`` uint8 (N, 28, 28) and ``labels`` int64 (N,)."""
    images: torch.Tensor
    labels: torch.Tensor
    source: Path

    def __len__(self) -> int:
        return len(self.labels)


@lru_cache(maxsize=8)
def _load_cached(split: str, folder: str) -> Split:
    img_stem, lbl_stem = FILES[split]
    images = read_idx(_find_file(Path(folder), img_stem))
    labels = read_idx(_find_file(Path(folder), lbl_stem))
    if images.dtype != torch.uint8 or images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{folder}: images {tuple(images.shape)} and labels {tuple(labels.shape)} do not match")
    return Split(images, labels.long(), Path(folder))


def load_split(split: str = "train", root: str | Path | None = None, download: bool = True) -> Split:
    """Load a whole split into memory once (cached per process: the tensors are shared, so do not
    modify them in place; ``.clone()`` first)."""
    return _load_cached(split, str(find_source(split, root, download)))


def to_float(images: torch.Tensor, size: int = 28) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, size, size) in [-1, 1]; antialiased resize when size != 28."""
    x = images.float().div(127.5).sub(1.0).unsqueeze(1)                     # (N, 1, 28, 28)
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(-1, 1)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float (N, 1, H, W) or (N, H, W) in [-1, 1] -> uint8 (N, H, W)."""
    x = x.squeeze(1) if x.ndim == 4 else x
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def round_trip(x: torch.Tensor, size: int = 16) -> torch.Tensor:
    """(N, 1, 28, 28) -> (N, 1, 28, 28) that has been through ``size`` x ``size``: down antialiased, as ``to_float``
    does, and back up bilinearly, as the classifier does with small images: what a 16x16 sample looks like to it."""
    small = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)


def load(split: str = "train", size: int = 28, root: str | Path | None = None,
         download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)``: float images (N, 1, size, size) in [-1, 1] (a new tensor) and int64 labels (N,)."""
    s = load_split(split, root, download)
    return to_float(s.images, size), s.labels.clone()


def map_batches(fn, x: torch.Tensor, batch_size: int = 1000, device: torch.device | str | None = None):
    """``fn`` applied to ``x`` in batches of ``batch_size`` rows (each moved to ``device``), the results concatenated
    on the CPU: a tensor, or a tuple of tensors when ``fn`` returns a tuple. Nothing is kept for autograd."""
    with torch.no_grad():
        outs = [fn(x[i:i + batch_size].to(device)) for i in range(0, len(x), batch_size)]
    if isinstance(outs[0], tuple):
        return tuple(torch.cat([o[k].cpu() for o in outs]) for k in range(len(outs[0])))
    return torch.cat([o.cpu() for o in outs])
