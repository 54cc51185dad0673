"""The recipes' helpers (fashiondiff.recipes)."""
import torch


def test_random_shifts_move_each_image_by_whole_pixels_and_fill_with_black():
    from fashiondiff.recipes import shift
    x = torch.rand(64, 1, 6, 6) * 2 - 1
    out = shift(x, 2, torch.Generator().manual_seed(0))
    seen = set()
    for a, b in zip(x, out):
        padded = torch.nn.functional.pad(a, (2, 2, 2, 2), value=-1.0)                  # (1, 10, 10)
        hits = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                if torch.equal(b, padded[:, 2 - dy:8 - dy, 2 - dx:8 - dx])]
        assert len(hits) == 1                                                           # exactly one shift explains it
        seen.add(hits[0])
    assert len(seen) > 10                                                               # and the shifts vary
    assert torch.equal(shift(x, 0, torch.Generator()), x)
