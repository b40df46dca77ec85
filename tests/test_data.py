import gzip
import struct
import sys

import numpy as np
import pytest

from bench.train import data
from bench.errors import UserError


def write_idx(path, array: np.ndarray, compress: bool):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def make_idx_folder(root, name, compress, n_train=24, n_test=12):
    folder = root / name
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = {k: rng.integers(0, 256, size=(n, 28, 28)) for k, n in (("train", n_train), ("t10k", n_test))}
    labels = {k: rng.integers(0, 10, size=n) for k, n in (("train", n_train), ("t10k", n_test))}
    for split in ("train", "t10k"):
        write_idx(folder / f"{split}-images-idx3-ubyte", images[split], compress)
        write_idx(folder / f"{split}-labels-idx1-ubyte", labels[split], compress)
    return images, labels


def test_mnist1d_is_generated_offline_and_cached():
    first = data.load("mnist1d")
    cached = list(data.cache_dir().glob("mnist1d-*.npz"))
    assert len(cached) == 1
    second = data.load("mnist1d")
    assert first.x_train.shape == (3600, 40) and first.x_val.shape == (400, 40)
    assert first.x_test.shape == (1000, 40)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    assert set(np.unique(first.y_train)) == set(range(10))
    # the splits are disjoint pieces of the generated training set
    assert not (set(map(bytes, first.x_train)) & set(map(bytes, first.x_val)))


def test_a_cached_mnist1d_is_read_without_importing_its_generator(monkeypatch):
    """mnist1d.data costs ~0.8 s to import; a process that finds the set cached skips it,
    and another mnist1d release names (and so generates) a set of its own."""
    import importlib.metadata

    first = data.load("mnist1d")  # generated, or found cached
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)  # importing it now fails
    np.testing.assert_array_equal(data.load("mnist1d").x_train, first.x_train)
    key = data._mnist1d_key()
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "99.0")
    assert data._mnist1d_key() != key


def _garbage(path):
    path.write_bytes(b"not a zip file")


def _truncated(path):
    path.write_bytes(path.read_bytes()[:300])


def _missing_array(path):
    with open(path, "wb") as f:
        np.savez(f, x=np.zeros((10, 40)), y=np.zeros(10))


def _object_array(path):  # reading it would take pickle
    with open(path, "wb") as f:
        np.savez(f, x=np.array([{}], dtype=object), y=np.zeros(10), x_test=np.zeros(3),
                 y_test=np.zeros(3))


def _lengths_disagree(path):  # a whole .npz, of the wrong arrays: IndexError in every cell
    with open(path, "wb") as f:
        np.savez(f, x=np.zeros((10, 40)), y=np.zeros(5), x_test=np.zeros((3, 40)),
                 y_test=np.zeros(3))


def _not_finite(path):  # a UserError blaming the dataset stopped the run
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["x"][0, 0] = np.nan
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """An empty $OPTBENCH_CACHE whose MNIST-1D generator hands out the session's set (the
    generator itself is tested above; here it would only cost ~2 s a case); yields that set."""
    real = data.load("mnist1d")  # generated, or found cached
    with np.load(next(data.cache_dir().glob("mnist1d-*.npz"))) as npz:
        arrays = dict(npz)
    monkeypatch.setattr(data, "_generate_mnist1d", lambda: dict(arrays))
    monkeypatch.setenv("OPTBENCH_CACHE", str(tmp_path))
    return real


@pytest.mark.parametrize("damage", [_garbage, _truncated, _missing_array, _object_array,
                                    _lengths_disagree, _not_finite])
def test_a_damaged_cached_mnist1d_is_named_and_generated_again(tmp_path, empty_cache, capsys,
                                                               damage):
    real = empty_cache
    path = tmp_path / f"mnist1d-{data._mnist1d_key()}.npz"
    with open(path, "wb") as f:
        np.savez(f, x=real.x_test, y=real.y_test, x_test=real.x_test, y_test=real.y_test)
    damage(path)
    generated = data.load("mnist1d")
    assert f"the cached data {path} cannot be read" in capsys.readouterr().err
    np.testing.assert_array_equal(generated.x_train, real.x_train)
    # written whole again: the next load reads it without a note
    np.testing.assert_array_equal(data.load("mnist1d").x_test, real.x_test)
    assert capsys.readouterr().err == ""
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_a_cache_that_cannot_take_the_generated_set_only_costs_a_note(tmp_path, empty_cache,
                                                                      capsys):
    real = empty_cache
    (tmp_path / f"mnist1d-{data._mnist1d_key()}.npz").mkdir()  # a folder in the file's place
    generated = data.load("mnist1d")
    np.testing.assert_array_equal(generated.x_val, real.x_val)
    err = capsys.readouterr().err
    assert "cannot be read" in err and "cannot cache the generated data" in err
    assert [p.name for p in tmp_path.iterdir()] == [f"mnist1d-{data._mnist1d_key()}.npz"]


def test_a_file_in_the_cache_folders_place_is_named_once(tmp_path, empty_cache, monkeypatch,
                                                         capsys):
    """Nothing is cached there, so nothing 'cannot be read'; the note names the file that
    is in the way (it said only 'File exists')."""
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    monkeypatch.setenv("OPTBENCH_CACHE", str(blocker))
    np.testing.assert_array_equal(data.load("mnist1d").x_val, empty_cache.x_val)
    err = capsys.readouterr().err
    assert "cannot be read" not in err and err.count("\n") == 1
    assert f"cannot cache the generated data at {blocker}/mnist1d-" in err
    assert f"({blocker}: File exists)" in err


def test_a_writer_killed_mid_write_leaves_no_temporary_for_good(tmp_path, empty_cache):
    """A kill -9 mid-write left its ~1.6 MB temporary in the cache for ever. The next read or
    write removes the temporaries of writers that are gone, never a running one's or another
    file's."""
    import os

    from bench.runner.files import HOST

    name = f"mnist1d-{data._mnist1d_key()}.npz"
    gone = 2**31 - 1  # above any system's largest pid: no process has it
    (tmp_path / f".{name}.{HOST}.{gone}.1.tmp").write_bytes(b"half a file")
    running = tmp_path / f".{name}.{HOST}.{os.getpid()}.7.tmp"  # this process, another thread
    running.write_bytes(b"being written")
    other = tmp_path / f".digits.npz.{HOST}.{gone}.1.tmp"  # not this file's
    other.write_bytes(b"")
    data.load("mnist1d")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, running.name, other.name])
    # a writer killed while another run wrote the set: later runs only read it, and remove it
    (tmp_path / f".{name}.{HOST}.{gone}.2.tmp").write_bytes(b"half a file")
    data.load("mnist1d")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, running.name, other.name])


def test_a_temporary_another_machine_is_writing_is_never_removed(tmp_path):
    """A cache on a shared disk (an NFS home's ~/.cache, a Dask cluster's) is written by
    other machines too: a pid that no process here has was taken for a writer killed
    mid-write, and its file removed under a writer running elsewhere. Nor is anything but a
    file removed: a link (not what it points to), a folder."""
    import os

    from bench.runner.files import HOST, remove_orphans, writers_temporary

    gone = 2**31 - 1
    mine = writers_temporary(tmp_path / "set.npz")
    assert mine.name.startswith(f".set.npz.{HOST}.{os.getpid()}.")
    orphan = tmp_path / f".set.npz.{HOST}.{gone}.1.tmp"
    elsewhere = [tmp_path / f".set.npz.{host}.{gone}.1.tmp"
                 for host in ("node-7", "node_7", f"x{HOST}", "npz")]
    for path in (orphan, *elsewhere):
        path.write_bytes(b"")
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep").write_bytes(b"")
    link = tmp_path / f".link.{HOST}.{gone}.1.tmp"
    link.symlink_to(precious)
    folder = tmp_path / f".folder.{HOST}.{gone}.1.tmp"
    folder.mkdir()
    remove_orphans(tmp_path)
    assert not orphan.exists() and all(path.exists() for path in elsewhere)
    assert link.is_symlink() and (precious / "keep").exists() and folder.is_dir()


def test_two_threads_generating_at_once_both_cache_it_without_a_note(tmp_path, empty_cache,
                                                                     monkeypatch, capsys):
    """Threads of one process (a Dask worker's) shared a temporary name: one's rename took
    the other's file away, and a note said the cache could not take the set."""
    import threading

    both_writing = threading.Barrier(2, timeout=60)
    savez = np.savez

    def savez_together(file, **arrays):
        both_writing.wait()
        savez(file, **arrays)

    monkeypatch.setattr(data.np, "savez", savez_together)
    threads = [threading.Thread(target=data.load, args=("mnist1d",)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert capsys.readouterr().err == ""
    assert [p.name for p in tmp_path.iterdir()] == [f"mnist1d-{data._mnist1d_key()}.npz"]
    monkeypatch.setattr(data.np, "savez", savez)
    np.testing.assert_array_equal(data.load("mnist1d").x_val, empty_cache.x_val)


def test_digits_splits():
    digits = data.load("digits")
    assert digits.input_shape == (8, 8, 1)
    total = len(digits.x_train) + len(digits.x_val) + len(digits.x_test)
    assert total == 1797
    assert digits.x_train.max() <= 1.0 and digits.x_train.dtype == np.float32


@pytest.mark.parametrize("compress", [True, False])
def test_idx_files_round_trip(tmp_path, compress):
    images, labels = make_idx_folder(tmp_path, "mnist", compress)
    mnist = data.load("mnist", tmp_path)
    assert mnist.input_shape == (28, 28, 1)
    assert len(mnist.x_train) + len(mnist.x_val) == 24 and len(mnist.x_test) == 12
    np.testing.assert_allclose(mnist.x_test[..., 0], images["t10k"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(mnist.y_test, labels["t10k"])


def test_missing_data_folder_names_the_expected_files(tmp_path):
    with pytest.raises(UserError, match="train-images-idx3-ubyte"):
        data.load("fashion-mnist", tmp_path)
    with pytest.raises(UserError, match="--data-dir"):
        data.load("mnist", None)


def test_malformed_idx_file_is_a_clear_error(tmp_path):
    make_idx_folder(tmp_path, "mnist", compress=False)
    (tmp_path / "mnist" / "train-labels-idx1-ubyte").write_bytes(b"not an idx file")
    with pytest.raises(UserError, match="bad magic number"):
        data.load("mnist", tmp_path)
    truncated = tmp_path / "mnist" / "t10k-images-idx3-ubyte"
    truncated.write_bytes(truncated.read_bytes()[:-10])
    with pytest.raises(UserError):
        data.read_idx(truncated)


def test_synthetic_is_deterministic():
    a, b = data.load("synthetic"), data.load("synthetic")
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.num_classes == 4
