"""pf-train data: pairs, evaluation data kept out (enforced in code), aligned crops."""

from __future__ import annotations

import numpy as np
import pytest

from pf_stream.errors import UserError
from pf_stream.train.data import ROADSCENE_TEST50, CropSampler, DataConfig, load_pairs
from tests.train_helpers import make_pairs


def test_roadscene_test_pairs_and_tno_are_never_loaded(tmp_path):
    road = make_pairs(tmp_path / "roadscene", ["FLIR_00211", "FLIR_09465", "FLIR_00001"])
    tno = make_pairs(tmp_path / "tno", ["01", "02"])
    pairs = load_pairs(DataConfig(folders=[str(road), str(tno)], crop=32))
    assert [p.name for p in pairs] == ["FLIR_00001"]
    # The guard holds whatever the config says: a TNO folder alone leaves nothing to train on.
    with pytest.raises(UserError, match="evaluation data"):
        load_pairs(DataConfig(folders=[str(tno)], crop=32))


def test_exclude_list_and_sequence_stride(tmp_path):
    clips = tmp_path / "clips"
    make_pairs(clips / "seq_a", [f"{i:04d}" for i in range(10)])
    plain = make_pairs(tmp_path / "plain", ["a", "b", "c"])
    listing = tmp_path / "skip.txt"
    listing.write_text("b.png\n")
    pairs = load_pairs(DataConfig(folders=[str(clips), str(plain)], crop=32, exclude=["c"], exclude_files=[str(listing)], sequence_stride=5))
    assert [p.name for p in pairs] == ["0000", "0005", "a"]


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: None, "not found"),
        (lambda d: (d / "ir").mkdir(parents=True), "no ir/ and vi/"),
        (lambda d: ((d / "ir").mkdir(parents=True), (d / "vi").mkdir()), "no images"),
        (lambda d: (make_pairs(d, ["x"]), (d / "ir" / "x.png").rename(d / "ir" / "y.png")), "without a partner"),
    ],
)
def test_bad_folders_are_one_line_errors(tmp_path, setup, message):
    folder = tmp_path / "set"
    setup(folder)
    with pytest.raises(UserError, match=message):
        load_pairs(DataConfig(folders=[str(folder)], crop=32))


def test_crops_are_aligned_gray_and_seeded(tmp_path):
    folder = make_pairs(tmp_path / "set", ["a", "b"], size=(40, 50))
    pairs = load_pairs(DataConfig(folders=[str(folder)], crop=24))
    for p in pairs:  # make VIS the same picture as IR: an aligned crop must then match exactly
        p.vis = p.ir.copy()
    ir, vis = CropSampler(pairs, 24, seed=3).batch(6)
    assert ir.shape == vis.shape == (6, 1, 24, 24)
    assert float(ir.min()) >= 0 and float(ir.max()) <= 1
    assert np.array_equal(ir.numpy(), vis.numpy())
    again, _ = CropSampler(pairs, 24, seed=3).batch(6)
    assert np.array_equal(ir.numpy(), again.numpy())


def test_vis_colour_becomes_luminance(tmp_path):
    folder = make_pairs(tmp_path / "set", ["a"], colour=True)
    pair = load_pairs(DataConfig(folders=[str(folder)], crop=16))[0]
    assert pair.vis.ndim == 2 and pair.vis.dtype == np.uint8


def test_shared_data_training_set_has_no_test_pairs(shared_data):
    folders = [shared_data / "roadscene", shared_data / "tno"]
    pairs = load_pairs(DataConfig(folders=[str(f) for f in folders], crop=64))
    listed = {line.strip().rsplit(".", 1)[0] for line in (shared_data / "roadscene" / "cddfuse_test50.txt").read_text().split()}
    assert listed == set(ROADSCENE_TEST50)
    names = {p.name for p in pairs}
    assert len(names) == 221 - 50 and not names & listed
