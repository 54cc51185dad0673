import pytest
import torch

from fashiondiff import data
from conftest import make_split, needs_data, write_idx


def test_class_lookup_by_name_index_and_typo():
    assert data.class_index("sneaker") == 7
    assert data.class_index("ANKLE BOOT") == 9
    assert data.class_index(3) == 3 and data.class_index("3") == 3
    with pytest.raises(ValueError, match="did you mean 'Sneaker'"):
        data.class_index("Sneakers")
    with pytest.raises(ValueError, match="out of range"):
        data.class_index(10)


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trip(tmp_path, gz):
    x = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    p = tmp_path / ("a.idx.gz" if gz else "a.idx")
    write_idx(p, x, gz)
    assert torch.equal(data.read_idx(p), x)


def test_truncated_file_names_the_file(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte"
    write_idx(p, torch.zeros(4, 28, 28, dtype=torch.uint8), gz=False, cut=10)
    with pytest.raises(data.DataError, match="train-images-idx3-ubyte.*truncated"):
        data.read_idx(p)


def test_cut_gzip_and_garbage_are_clear_errors(tmp_path):
    good = tmp_path / "good.gz"
    write_idx(good, torch.zeros(4, 28, 28, dtype=torch.uint8))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(good.read_bytes()[:-20])
    with pytest.raises(data.DataError, match="cut.gz"):
        data.read_idx(cut)
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello world, not idx")
    with pytest.raises(data.DataError, match="bad magic"):
        data.read_idx(junk)


@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_both_layouts_via_explicit_root(isolated_data, layout):
    images, labels = make_split(isolated_data / "mine", layout=layout)
    s = data.load_split("train", root=isolated_data / "mine", download=False)
    assert s.images.dtype == torch.uint8 and s.images.shape == (12, 28, 28)
    assert s.labels.dtype == torch.int64 and torch.equal(s.labels, labels.long())
    assert torch.equal(s.images, images)


def test_source_order(isolated_data, monkeypatch):
    cache = isolated_data / "cache" / "fashiondiff"
    debian = isolated_data / "debian"
    make_split(debian, seed=1)
    assert data.find_source("train", download=False) == debian
    make_split(cache, layout="torchvision", seed=2)
    assert data.find_source("train", download=False) == cache          # the cache beats Debian
    make_split(isolated_data / "env", seed=3)
    monkeypatch.setenv(data.ENV_VAR, str(isolated_data / "env"))
    assert data.find_source("train", download=False) == isolated_data / "env"   # the variable beats both
    make_split(isolated_data / "root", seed=4)
    assert data.find_source("train", root=isolated_data / "root", download=False) == isolated_data / "root"


def test_explicit_root_without_files_is_an_error(isolated_data):
    with pytest.raises(data.DataNotFound, match="does not hold"):
        data.find_source("train", root=isolated_data / "nothing")


def test_offline_with_no_source_names_the_remedies(isolated_data, monkeypatch):
    import torchvision.datasets

    class Offline:
        def __init__(self, *a, **k):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", Offline)
    with pytest.raises(data.DataNotFound) as e:
        data.find_source("train")
    msg = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in msg and data.ENV_VAR in msg and "download" in msg


def test_float_views_and_scaling():
    x = torch.tensor([[[0, 255], [128, 64]]], dtype=torch.uint8).expand(1, 2, 2)
    f = data.to_float(torch.zeros(2, 28, 28, dtype=torch.uint8) + 255, 16)
    assert f.shape == (2, 1, 16, 16) and torch.allclose(f, torch.ones_like(f))
    g = data.to_float(x.repeat(1, 14, 14), 28)
    assert g.min() == -1 and g.max() == 1
    assert torch.equal(data.to_uint8(g), x.repeat(1, 14, 14))


@needs_data
def test_real_data_shapes_and_balance():
    train, test = data.load_split("train"), data.load_split("test")
    assert train.images.shape == (60000, 28, 28) and test.images.shape == (10000, 28, 28)
    assert torch.equal(torch.bincount(test.labels), torch.full((10,), 1000))
    x, y = data.load("test", 16)
    assert x.shape == (10000, 1, 16, 16) and -1 <= x.min() and x.max() <= 1


def test_class_index_accepts_tensor_and_numpy_integers():
    import numpy as np
    assert data.class_index(torch.tensor(7)) == 7 and data.class_index(np.int64(2)) == 2
    with pytest.raises(ValueError):
        data.class_index(True)
    with pytest.raises(ValueError):
        data.class_index(2.5)
