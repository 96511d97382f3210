from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.layout import local_path
from tests.tf_jobs.conftest import (
    EVAL_DATE,
    EVAL_ROWS,
    FEATURE_TAG,
    TRAIN_DATE,
    Workspace,
    encoded_table,
    make_fmap,
    write_partition,
)
from tf_jobs import inputs
from tf_jobs.inputs import CorruptFileError, EncodedDataError, InputOptions

pytestmark = pytest.mark.tf


HEADS = make_fmap().heads("binary")


def _open(ws: Workspace, date: str = EVAL_DATE) -> inputs.EncodedSource:
    return inputs.open_encoded(ws.layout.encoded(FEATURE_TAG, date), ws.fmap, HEADS)


def _collect(ws: Workspace, options: InputOptions, epoch: int = 0):
    source = _open(ws)
    return list(inputs.iter_arrays(source, ws.fmap, HEADS, options, epoch=epoch, task="binary"))


def test_open_skips_marker_and_hidden_files(workspace: Workspace) -> None:
    source = _open(workspace)
    assert len(source.files) == 3
    assert all(path.rsplit("/", 1)[1].startswith("part-") for path in source.files)


def test_batches_have_exact_size_and_cover_every_row(workspace: Workspace) -> None:
    batches = _collect(workspace, InputOptions(batch_size=128))
    sizes = [len(labels) for _, labels in batches]
    assert sizes[:-1] == [128] * (len(sizes) - 1)
    assert sum(sizes) == EVAL_ROWS
    inputs_, labels = batches[0]
    assert set(inputs_) == {"user_nums", "user_ctgs", "item_ctgs"}
    assert inputs_["user_nums"].shape == (128, 2) and inputs_["user_nums"].dtype == np.float32
    assert inputs_["user_ctgs"].shape == (128, 2) and inputs_["user_ctgs"].dtype == np.int32
    assert inputs_["item_ctgs"].shape == (128, 1)
    assert labels.shape == (128, 1) and labels.dtype == np.float32


def _rows(batches) -> np.ndarray:
    """Every row as one float vector (nums, ids, label), to compare row sets."""
    return np.concatenate(
        [
            np.hstack([x["user_nums"], x["user_ctgs"], x["item_ctgs"], y]).astype(np.float64)
            for x, y in batches
        ]
    )


def test_shuffle_permutes_rows_reproducibly_and_per_epoch(workspace: Workspace) -> None:
    plain = _rows(_collect(workspace, InputOptions(batch_size=100)))
    options = InputOptions(batch_size=100, shuffle=True, shuffle_buffer=1000, seed=7)
    first = _rows(_collect(workspace, options, epoch=0))
    again = _rows(_collect(workspace, options, epoch=0))
    second = _rows(_collect(workspace, options, epoch=1))

    def as_set(rows: np.ndarray) -> np.ndarray:
        return rows[np.lexsort(rows.T[::-1])]

    np.testing.assert_array_equal(as_set(first), as_set(plain))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, plain)
    assert not np.array_equal(first, second)


def test_make_dataset_signature_and_steps(workspace: Workspace) -> None:
    import tensorflow as tf

    dataset = inputs.make_dataset(
        _open(workspace),
        workspace.fmap,
        HEADS,
        InputOptions(batch_size=1000),
        rows=EVAL_ROWS,
        task="binary",
    )
    assert dataset.cardinality().numpy() == 3
    features, labels = next(iter(dataset))
    assert features["user_ctgs"].dtype == tf.int32
    assert tuple(labels.shape) == (1000, 1)
    assert sum(int(y.shape[0]) for _, y in dataset) == EVAL_ROWS


def _epochs(dataset, epochs: int) -> list[list]:
    """``epochs`` passes over ``dataset`` as numpy batches, as Keras makes them."""
    return [[(_numpy(x), y.numpy()) for x, y in dataset] for _ in range(epochs)]


def _numpy(features) -> dict[str, np.ndarray]:
    return {name: tensor.numpy() for name, tensor in features.items()}


def _dataset(ws: Workspace, options: InputOptions):
    return inputs.make_dataset(_open(ws), ws.fmap, HEADS, options, rows=EVAL_ROWS, task="binary")


def _sorted(rows: np.ndarray) -> np.ndarray:
    return rows[np.lexsort(rows.T[::-1])]


def test_an_unshuffled_partition_in_memory_gives_the_streamed_batches(
    workspace: Workspace,
) -> None:
    size = inputs.decoded_bytes(workspace.fmap, HEADS, EVAL_ROWS)
    streamed = _collect(workspace, InputOptions(batch_size=128))
    held = _dataset(workspace, InputOptions(batch_size=128, memory_bytes=size))
    assert held.cardinality().numpy() == len(streamed)
    for epoch in _epochs(held, 2):
        assert len(epoch) == len(streamed)
        for (x, y), (want_x, want_y) in zip(epoch, streamed, strict=True):
            np.testing.assert_array_equal(y, want_y)
            for name, values in want_x.items():
                assert x[name].dtype == values.dtype
                np.testing.assert_array_equal(x[name], values)


def test_in_memory_every_epoch_shuffles_all_rows_anew_and_reproducibly(
    workspace: Workspace,
) -> None:
    plain = _rows(_collect(workspace, InputOptions(batch_size=100)))
    options = InputOptions(
        batch_size=100, shuffle=True, shuffle_buffer=500, seed=7, memory_bytes=2**30
    )
    first, second = (_rows(epoch) for epoch in _epochs(_dataset(workspace, options), 2))
    again = _rows(_epochs(_dataset(workspace, options), 1)[0])
    np.testing.assert_array_equal(_sorted(first), _sorted(plain))
    np.testing.assert_array_equal(_sorted(second), _sorted(plain))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)
    # One permutation of all rows, not windows of shuffle_buffer rows (those would
    # keep the first batch inside one part file): the first batch draws from all three.
    files = np.searchsorted(np.cumsum([1000, 1000]), np.arange(EVAL_ROWS), side="right")
    position = {tuple(row): i for i, row in enumerate(plain)}
    assert len({files[position[tuple(row)]] for row in first[:100]}) == 3


def test_a_partition_over_the_memory_limit_is_streamed(workspace: Workspace) -> None:
    size = inputs.decoded_bytes(workspace.fmap, HEADS, EVAL_ROWS)
    options = InputOptions(batch_size=100, shuffle=True, shuffle_buffer=500, seed=7)
    windowed = _rows(_collect(workspace, options))
    below = _rows(_epochs(_dataset(workspace, replace(options, memory_bytes=size - 1)), 1)[0])
    at = _rows(_epochs(_dataset(workspace, replace(options, memory_bytes=size)), 1)[0])
    np.testing.assert_array_equal(below, windowed)
    assert not np.array_equal(at, windowed)
    np.testing.assert_array_equal(_sorted(at), _sorted(windowed))


def test_decoded_bytes_count_inputs_and_labels(workspace: Workspace) -> None:
    # user_nums 2 float32, user_ctgs 2 int32, item_ctgs 1 int32, one float32 label.
    assert inputs.decoded_bytes(workspace.fmap, HEADS, 10) == 10 * (2 * 4 + 2 * 4 + 4 + 4)


def test_missing_partition_names_the_path(fresh_workspace: Workspace) -> None:
    uri = fresh_workspace.layout.encoded(FEATURE_TAG, TRAIN_DATE)
    with pytest.raises(EncodedDataError, match="does not exist") as info:
        inputs.open_encoded(uri, fresh_workspace.fmap)
    assert uri in str(info.value)


def test_partition_without_part_files_names_the_path(fresh_workspace: Workspace) -> None:
    uri = fresh_workspace.layout.encoded(FEATURE_TAG, TRAIN_DATE)
    write_partition(uri, encoded_table(10, 0), parts=0)
    with pytest.raises(EncodedDataError, match="no part files") as info:
        inputs.open_encoded(uri, fresh_workspace.fmap)
    assert uri in str(info.value)


def test_partition_without_success_is_incomplete(fresh_workspace: Workspace) -> None:
    uri = fresh_workspace.layout.encoded(FEATURE_TAG, TRAIN_DATE)
    write_partition(uri, encoded_table(10, 0), success=False)
    with pytest.raises(EncodedDataError, match="not complete") as info:
        inputs.open_encoded(uri, fresh_workspace.fmap)
    assert uri in str(info.value)


def test_missing_column_is_named(fresh_workspace: Workspace) -> None:
    uri = fresh_workspace.layout.encoded(FEATURE_TAG, TRAIN_DATE)
    write_partition(uri, encoded_table(10, 0).drop_columns(["item_ctgs"]))
    with pytest.raises(EncodedDataError, match="item_ctgs"):
        inputs.open_encoded(uri, fresh_workspace.fmap, HEADS)


def test_label_scan_and_binary_check(fresh_workspace: Workspace) -> None:
    uri = fresh_workspace.layout.encoded(FEATURE_TAG, TRAIN_DATE)
    write_partition(uri, encoded_table(6, 0, label_values=np.array([0, 1, 1, 2, 0, 1])))
    source = inputs.open_encoded(uri, fresh_workspace.fmap, HEADS)
    summary = inputs.scan_labels(source, HEADS)
    stats = summary.of("label")
    assert (summary.rows, stats.total, stats.values) == (6, 5.0, (0.0, 1.0, 2.0))
    with pytest.raises(EncodedDataError, match=r"other than 0 and 1 \(2\)"):
        inputs.check_labels(summary, HEADS, uri, uri)


# ---------------------------------------------------------------- unreadable part files


def _parts(uri: str) -> list[Path]:
    return sorted(Path(local_path(uri)).glob("part-*.parquet"))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt_column(path: Path, column: str) -> None:
    """Overwrite the pages of one column chunk: the footer and other columns stay readable."""
    chunk = next(
        chunk
        for chunk in (
            pq.read_metadata(path).row_group(0).column(i)
            for i in range(pq.read_metadata(path).num_columns)
        )
        if chunk.path_in_schema.split(".")[0] == column
    )
    data = bytearray(path.read_bytes())
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data[start : start + chunk.total_compressed_size] = b"\xee" * chunk.total_compressed_size
    path.write_bytes(bytes(data))


def _corrupt_partition(ws: Workspace, rows: int = 1200) -> tuple[str, list[Path]]:
    uri = ws.layout.encoded(FEATURE_TAG, TRAIN_DATE)
    write_partition(uri, encoded_table(rows, 5), parts=2)
    return uri, _parts(uri)


def test_a_truncated_first_file_is_named_when_opening(fresh_workspace: Workspace) -> None:
    uri, parts = _corrupt_partition(fresh_workspace)
    _truncate(parts[0])  # the file the dataset reads its schema from
    with pytest.raises(CorruptFileError) as info:
        inputs.open_encoded(uri, fresh_workspace.fmap, HEADS)
    assert str(info.value).startswith(
        f"cannot read Parquet file {parts[0]} of encoded partition {uri}: "
    )
    assert "rerun encode for that date" in str(info.value)


def test_a_truncated_file_is_named_by_the_label_scan(fresh_workspace: Workspace) -> None:
    uri, parts = _corrupt_partition(fresh_workspace)
    _truncate(parts[1])
    source = inputs.open_encoded(uri, fresh_workspace.fmap, HEADS)
    with pytest.raises(CorruptFileError, match=f"file {parts[1]} of encoded partition {uri}: "):
        inputs.scan_labels(source, HEADS)


def test_a_corrupt_column_is_named_while_reading_batches(fresh_workspace: Workspace) -> None:
    uri, parts = _corrupt_partition(fresh_workspace)
    _corrupt_column(parts[1], "user_nums")
    source = inputs.open_encoded(uri, fresh_workspace.fmap, HEADS)
    assert inputs.scan_labels(source, HEADS).rows == 1200  # the label column is intact
    expected = f"file {parts[1]} of encoded partition {uri}: "
    with pytest.raises(CorruptFileError, match=expected):
        list(inputs.iter_arrays(source, fresh_workspace.fmap, HEADS, InputOptions(), task="binary"))


@pytest.mark.parametrize("in_memory_mb", [0, 1024], ids=["streamed", "in-memory"])
def test_training_on_a_corrupt_file_fails_naming_it(
    fresh_workspace: Workspace, in_memory_mb: int
) -> None:
    """Streamed, the file is met inside tf.data (Keras fit); in memory, while loading:
    either way the job reports it by name."""
    from tf_jobs import train

    uri, parts = _corrupt_partition(fresh_workspace)
    _corrupt_column(parts[1], "user_nums")
    job = fresh_workspace.job(
        params={"epochs": 1, "batch_size": 256, "hidden_units": [4]},
        options={"in_memory_mb": in_memory_mb},
    )
    with pytest.raises(EncodedDataError) as info:
        train.run(job)
    message = str(info.value)
    assert message.startswith(f"cannot read Parquet file {parts[1]} of encoded partition {uri}: ")
    assert "Traceback" not in message and "\n" not in message
    assert not storage.exists(fresh_workspace.layout.model("dnn_v1", TRAIN_DATE))


@pytest.mark.parametrize(
    ("shuffle", "batch_size"),
    [(False, 128), (False, 1000), (True, 128)],
    ids=["in-order", "in-order-whole-batches", "shuffled"],
)
def test_keras_training_reads_a_partition_held_in_memory_once(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, shuffle: bool, batch_size: int
) -> None:
    """Keras stops each epoch after its steps without draining the dataset: the cache
    must still be complete after the first epoch, so later epochs read no file."""
    import keras

    from tf_jobs import models

    reads: list[int] = []
    chunks = inputs.iter_chunks

    def counted(*args, **kwargs):
        reads.append(1)
        yield from chunks(*args, **kwargs)

    monkeypatch.setattr(inputs, "iter_chunks", counted)
    options = InputOptions(batch_size=batch_size, shuffle=shuffle, memory_bytes=2**30)
    spec = models.get_model("dnn_binary_classifier")
    params = models.resolve_params(spec, {"hidden_units": [4], "batch_size": batch_size})
    model = models.build_model(spec, workspace.fmap, params)
    history = model.fit(_dataset(workspace, options), epochs=3, verbose=0)
    assert len(history.history["loss"]) == 3
    assert reads == [1]
    streamed = replace(options, memory_bytes=0)
    keras.utils.set_random_seed(1)
    model.fit(_dataset(workspace, streamed), epochs=3, verbose=0)
    assert reads == [1, 1, 1, 1]  # the streamed path reads the files every epoch
