"""Weights are read as safetensors + JSON only: a pickle dressed up as weights is refused, never executed."""
import json
import pickle

import pytest

from fashiondiff.checkpoint import CONFIG, WEIGHTS, load_tensors
from fashiondiff.pipelines import load_model


class Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_a_pickle_named_like_weights_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / WEIGHTS).write_bytes(pickle.dumps(Payload(str(marker))))
    (folder / CONFIG).write_text(json.dumps({"model": "transformer", "config": {}}))
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        load_tensors(folder / WEIGHTS)
    with pytest.raises(ValueError):
        load_model("transformer", folder, device="cpu")
    assert not marker.exists()


def test_no_module_of_the_package_unpickles():
    import pathlib
    import fashiondiff
    for path in pathlib.Path(fashiondiff.__file__).parent.glob("*.py"):
        text = path.read_text()
        assert "import pickle" not in text and "pickle.load" not in text, path
        for line in text.splitlines():
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{path}: {line.strip()}"
