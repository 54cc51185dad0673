import gzip
import os
import struct

import pytest
import torch

from fashiondiff import data


def write_idx(path, tensor: torch.Tensor, gz: bool = True, cut: int = 0) -> None:
    """Write ``tensor`` (uint8) as an IDX file; ``cut`` drops that many bytes off the end."""
    raw = bytes([0, 0, 0x08, tensor.ndim]) + b"".join(struct.pack(">i", d) for d in tensor.shape)
    raw += tensor.to(torch.uint8).numpy().tobytes()
    raw = raw[:len(raw) - cut]
    path.parent.mkdir(parents=True, exist_ok=True)
    (gzip.open if gz else open)(path, "wb").write(raw)


def make_split(folder, split="train", n=12, layout="flat", gz=True, seed=0):
    """A tiny fake Fashion-MNIST split; returns (images, labels)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
    labels = torch.arange(n, dtype=torch.uint8) % 10
    sub = folder if layout == "flat" else folder / "FashionMNIST" / "raw"
    img, lbl = data.FILES[split]
    suffix = ".gz" if gz else ""
    write_idx(sub / (img + suffix), images, gz)
    write_idx(sub / (lbl + suffix), labels, gz)
    return images, labels


@pytest.fixture
def isolated_data(tmp_path, monkeypatch):
    """No real data anywhere: empty cache, no Debian folder, no env var, fresh loader cache."""
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "debian")
    data._load_cached.cache_clear()
    yield tmp_path
    data._load_cached.cache_clear()


def real_data_available() -> bool:
    try:
        data.find_source("test", download=False)
        return True
    except data.DataError:
        return False


needs_data = pytest.mark.skipif(not real_data_available(), reason="Fashion-MNIST not found locally "
                                "(apt-get install dataset-fashion-mnist, or set FASHIONDIFF_DATA)")
