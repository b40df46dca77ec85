"""Datasets, all available offline: generated (MNIST-1D, synthetic), shipped by a package
(sklearn digits) or read from a folder the user gives (MNIST / Fashion-MNIST IDX files).

Every loader returns a `Dataset` with train / validation / test splits: inputs and targets
of any shape, floating point kept as float32 and integers as int32 (class labels, token
ids). Nothing here downloads: MNIST-1D is generated with
`mnist1d.data.make_dataset` (never `get_dataset`, which downloads by default).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.errors import UserError
from bench.train import npz_cache

DATA_ENV = "OPTBENCH_DATA"
CACHE_ENV = "OPTBENCH_CACHE"
_SPLIT_SEED = 0  # fixed, so every run sees the same validation split


@dataclass(frozen=True)
class Dataset:
    """Three splits of (inputs, targets), the first axis counting examples. `num_classes` is
    0 where targets are not class labels (regression, function minimisation)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int = 0

    def __post_init__(self):
        for split in ("train", "val", "test"):
            x, y = (_as_array(getattr(self, f"{part}_{split}"), f"{self.name}: {part}_{split}")
                    for part in "xy")
            if not len(x) or len(x) != len(y):
                raise UserError(f"dataset {self.name}: the {split} split holds {len(x)} inputs"
                                f" and {len(y)} targets; expected the same number, at least one")
            object.__setattr__(self, f"x_{split}", x)
            object.__setattr__(self, f"y_{split}", y)
        for part in "xy":  # one model evaluates every split: an example's shape is shared
            shapes = {split: getattr(self, f"{part}_{split}").shape[1:]
                      for split in ("train", "val", "test")}
            if len(set(shapes.values())) > 1:
                raise UserError(f"dataset {self.name}: {part} has examples of shape"
                                + ", ".join(f" {shape} in {split}" for split, shape in shapes.items())
                                + "; expected one shape in every split")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def _as_array(values, what: str) -> np.ndarray:
    """float32 for floating point, int32 for integers and booleans, contiguous."""
    array = np.asarray(values)
    if array.ndim == 0:
        raise UserError(f"dataset {what} is a scalar; expected an array with one row per example")
    if np.issubdtype(array.dtype, np.floating):
        array = np.ascontiguousarray(array, dtype=np.float32)
        if not np.isfinite(array).all():  # every step would "diverge": the data's fault
            bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
            raise UserError(f"dataset {what} holds {bad} NaN or infinite value(s) (as float32);"
                            " expected finite numbers")
        return array
    if np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
        return np.ascontiguousarray(array, dtype=np.int32)
    raise UserError(f"dataset {what} has dtype {array.dtype}; expected floats or integers")


def load(name: str, data_dir: str | Path | None = None) -> Dataset:
    """The dataset called `name`; IDX datasets are read from `data_dir` / $OPTBENCH_DATA."""
    if name not in LOADERS:
        raise UserError(f"unknown dataset '{name}'; known: {', '.join(sorted(LOADERS))}")
    return LOADERS[name](data_dir)


def check_available(name: str, data_dir: str | Path | None = None) -> None:
    """Raise UserError now, before anything trains, if `name` cannot be loaded later."""
    if name not in LOADERS:
        raise UserError(f"unknown dataset '{name}'; known: {', '.join(sorted(LOADERS))}")
    if name in IDX_DATASETS:  # read in full: a damaged file must stop the run before any
        idx_dataset(name, data_dir)  # cell trains, not after the first ones (about 1 s)


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "optbench"
    # Blank is unset: Path("") is the current folder, where a stray jax/ would appear.
    return Path(os.environ.get(CACHE_ENV, "").strip() or default)


def split_validation(name, x, y, x_test, y_test, num_classes, val_fraction) -> Dataset:
    """Hold out a fixed, seeded fraction of the training set for validation."""
    order = np.random.default_rng(_SPLIT_SEED).permutation(len(x))
    n_val = int(round(len(x) * val_fraction))
    val, train = order[:n_val], order[n_val:]
    as_x = lambda a: np.asarray(a, dtype=np.float32)
    as_y = lambda a: np.asarray(a, dtype=np.int32)
    return Dataset(name, as_x(x[train]), as_y(y[train]), as_x(x[val]), as_y(y[val]),
                   as_x(x_test), as_y(y_test), num_classes)


# --- MNIST-1D -------------------------------------------------------------------------------

def mnist1d(data_dir=None) -> Dataset:
    """4000 train / 1000 test sequences of length 40; 10% of train held out for validation."""
    path = cache_dir() / f"mnist1d-{_mnist1d_key()}.npz"
    arrays = npz_cache.read(path, MNIST1D_ARRAYS)
    if arrays is not None:
        try:
            return _mnist1d_splits(arrays)
        except (UserError, IndexError, ValueError) as exc:  # it reads, but not as the set:
            npz_cache.unreadable(path, exc)  # lengths that disagree, no examples, NaN
    arrays = _generate_mnist1d()
    npz_cache.keep(path, arrays)
    return _mnist1d_splits(arrays)


def _mnist1d_splits(arrays: dict[str, np.ndarray]) -> Dataset:
    return split_validation("mnist1d", arrays["x"], arrays["y"], arrays["x_test"],
                            arrays["y_test"], 10, val_fraction=0.1)


MNIST1D_ARRAYS = ("x", "y", "x_test", "y_test")


def _mnist1d_key() -> str:
    """The generated set's name: the mnist1d release that makes it (its generation arguments
    are that release's defaults). Reading the arguments themselves means importing
    mnist1d.data, ~0.8 s (scipy.interpolate), which every process that finds the set cached
    would pay. A locally edited mnist1d that keeps its version number is not told apart."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("mnist1d")
    except PackageNotFoundError:  # not installed as a distribution: ask the module itself
        from mnist1d.data import get_dataset_args

        args = get_dataset_args(as_dict=True)
        args.pop("url", None)  # where the authors' pickle lives; irrelevant to generation
        release = json.dumps(args, sort_keys=True)
    return hashlib.sha256(f"mnist1d {release}".encode()).hexdigest()[:12]


def _generate_mnist1d() -> dict[str, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset

    state = np.random.get_state()  # make_dataset reseeds NumPy's global generator
    try:
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(state)
    return {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test")}


# --- sklearn digits -------------------------------------------------------------------------

def digits(data_dir=None) -> Dataset:
    """1797 8x8 grey images (values 0..16 scaled to 0..1); 20% test, 10% of the rest validation."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0)[..., None]  # (n, 8, 8, 1)
    y = bunch.target
    order = np.random.default_rng(_SPLIT_SEED).permutation(len(x))
    n_test = int(round(len(x) * 0.2))
    test, rest = order[:n_test], order[n_test:]
    return split_validation("digits", x[rest], y[rest], x[test], y[test], 10, val_fraction=0.1)


# --- IDX files (MNIST, Fashion-MNIST) -------------------------------------------------------

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def idx_paths(name: str, data_dir: str | Path | None) -> dict[str, Path]:
    """The four IDX files of `name` under `<data_dir>/<name>/`; UserError if any is missing."""
    root = data_dir or os.environ.get(DATA_ENV)
    expected = ", ".join(f"{f}[.gz]" for f in IDX_FILES.values())
    if not root:
        raise UserError(f"dataset '{name}' is read from files: pass --data-dir DIR (or set"
                        f" {DATA_ENV}) where DIR/{name}/ holds {expected}")
    folder = Path(root) / name
    paths = {}
    for key, stem in IDX_FILES.items():
        found = next((p for p in (folder / stem, folder / f"{stem}.gz") if p.is_file()), None)
        if found is None:
            raise UserError(f"dataset '{name}': no {stem}[.gz] in {folder}; expected {expected}")
        paths[key] = found
    return paths


MIN_EXAMPLES = 24  # enough for a validation split of 1/12 to hold two examples


def idx_dataset(name: str, data_dir: str | Path | None) -> Dataset:
    """Read `<data_dir>/<name>/{train,t10k}-{images,labels}-idx*-ubyte[.gz]`."""
    arrays = {key: read_idx(path) for key, path in idx_paths(name, data_dir).items()}
    if len(arrays["x_train"]) != len(arrays["y_train"]) or len(arrays["x_test"]) != len(arrays["y_test"]):
        raise UserError(f"dataset '{name}': image and label files disagree on the number of examples")
    if arrays["x_train"].ndim != 3 or arrays["x_test"].shape[1:] != arrays["x_train"].shape[1:]:
        raise UserError(f"dataset '{name}': image files must hold (n, rows, cols) arrays of one size")
    if len(arrays["x_train"]) < MIN_EXAMPLES or not len(arrays["x_test"]):
        raise UserError(f"dataset '{name}' holds {len(arrays['x_train'])} training and"
                        f" {len(arrays['x_test'])} test examples; it needs at least"
                        f" {MIN_EXAMPLES} training examples and one test example")
    scale = lambda a: a.astype(np.float32)[..., None] / 255.0  # (n, rows, cols, 1)
    num_classes = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
    return split_validation(name, scale(arrays["x_train"]), arrays["y_train"],
                            scale(arrays["x_test"]), arrays["y_test"], num_classes,
                            val_fraction=1 / 12)


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (magic 0x0000080N, N = number of dims)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or not 1 <= raw[3] <= 4:
        raise UserError(f"{path} is not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path} is truncated (header)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise UserError(f"{path} holds {len(raw) - header} bytes of data; its header says {size}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


# --- synthetic ------------------------------------------------------------------------------

def synthetic(data_dir=None) -> Dataset:
    """Four overlapping Gaussian blobs in 16 dimensions: ~90% separable, learnable in a few
    hundred steps, for tests."""
    rng = np.random.default_rng(1234)
    num_classes, dim, n = 4, 16, 768
    centers = rng.normal(scale=0.7, size=(num_classes, dim))
    y = rng.integers(0, num_classes, size=n)
    x = centers[y] + rng.normal(size=(n, dim))
    return split_validation("synthetic", x[:640], y[:640], x[640:], y[640:], num_classes,
                            val_fraction=0.2)


IDX_DATASETS = ("mnist", "fashion-mnist")
LOADERS = {
    "mnist1d": mnist1d,
    "digits": digits,
    "synthetic": synthetic,
    **{name: (lambda data_dir=None, name=name: idx_dataset(name, data_dir)) for name in IDX_DATASETS},
}
