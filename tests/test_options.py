"""ClassifyOptions: checked once when made, with the messages the command line shows; what keys a cluster job."""

from __future__ import annotations

import dataclasses

import pytest

from aerialseg.cluster import BlockJob
from aerialseg.errors import InputError
from aerialseg.options import ClassifyOptions


@pytest.mark.parametrize("options,message", [
    ({"tta": "spin"}, "tta must be one of none, flip, d4, got 'spin'"),
    ({"device": "tpu"}, "device must be one of auto, cpu, cuda, got 'tpu'"),
    ({"precision": "fp8"}, "precision must be one of auto, fp32, fp16, int8, got 'fp8'"),
    ({"output_grid": "model"}, "output grid must be one of input, working, got 'model'"),
    ({"tile_size": 40}, "tile size must be a multiple of 16 from 16 to 4096, got 40"),
    ({"tile_size": 64, "overlap": 40}, r"overlap must be between 0 and half the tile size \(32\), got 40"),
    ({"batch_size": 0}, "batch size must be at least 1, got 0"),
    ({"threads": -2}, "threads must be at least 1, got -2"),
    ({"block_size": 0}, "block size must be at least 1, got 0"),
    ({"value_range": float("nan")}, "value range .* must be a positive number, got nan"),
    ({"input_gsd": 0.0}, "--input-gsd must be a positive number of metres, got 0.0"),
    ({"tile": 64}, "unknown classify option"),
])
def test_bad_options_are_refused_when_made(options, message):
    with pytest.raises(InputError, match=message):
        ClassifyOptions.of(options)


def test_options_are_frozen_and_give_the_default_batch_per_device():
    options = ClassifyOptions(tile_size=64, overlap=16)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.tile_size = 128  # type: ignore[misc]
    assert ClassifyOptions.of(options) is options
    assert (options.batch_for("cpu"), options.batch_for("cuda")) == (1, 8)
    assert ClassifyOptions(batch_size=3).batch_for("cuda") == 3


def test_a_cluster_job_key_depends_only_on_what_decides_the_output(tmp_path):
    job = BlockJob(input=str(tmp_path / "in.tif"), model=str(tmp_path / "m.onnx"), work_dir="",
                   options=ClassifyOptions(tile_size=64))
    same = [dataclasses.replace(job, work_dir=str(tmp_path)), dataclasses.replace(job, host_threads={"h": 3}),
            dataclasses.replace(job, options=ClassifyOptions(tile_size=64, threads=2))]
    other = [dataclasses.replace(job, confidence=True),
             dataclasses.replace(job, options=ClassifyOptions(tile_size=128)),
             dataclasses.replace(job, options=ClassifyOptions(tile_size=64, tta="flip")),
             dataclasses.replace(job, input=str(tmp_path / "other.tif"))]
    assert {j.key() for j in same} == {job.key()}
    assert len({j.key() for j in other} | {job.key()}) == len(other) + 1
