"""Encoding a dataset larger than one process: a Dask DataFrame, partition by partition, to Parquet.

A fitted :class:`~skmm.MultimodalFusion` (or any fitted transformer returning
a DataFrame) is applied to each partition of a Dask DataFrame on the
cluster's workers; each partition's features are written to one Parquet file
of a folder. The work is resumable twice over: a partition whose file exists
is skipped, and a partition cut short finds the rows it had encoded in the
embedding cache (``cache="memory"`` is backed by a disk folder shared by the
processes of one machine).

Dask is an optional dependency: ``pip install "skmm[dask]"``.
"""

import os
from pathlib import Path

from sklearn.utils.validation import check_is_fitted

__all__ = ["encode_partitions"]


def _require_dask():
    try:
        import dask  # noqa: F401
        import dask.dataframe  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "encode_partitions needs Dask, which is not installed. Install it with "
            "pip install \"skmm[dask]\"."
        ) from exc


def _encode_partition(transformer, partition, path):
    """Transform one partition and write it to ``path`` atomically (a reader never sees half a file)."""
    features = transformer.transform(partition)
    temporary = path.with_name(path.name + ".tmp")
    features.to_parquet(temporary)
    os.replace(temporary, path)
    return str(path)


def encode_partitions(transformer, data, path, *, progress=True):
    """Encode every partition of a Dask DataFrame with a fitted transformer; write Parquet files.

    Partition ``i`` becomes ``path/part-<i>.parquet``. Run on a
    ``dask.distributed`` cluster when a client is active (its workers do the
    encoding), else with Dask's local scheduler. Run it again after an
    interruption: finished partitions are skipped, and the rows of an
    unfinished one already in the embedding cache are not encoded again.

    Parameters
    ----------
    transformer : fitted transformer
        Usually a fitted :class:`~skmm.MultimodalFusion`; its ``transform``
        must return a pandas DataFrame (Parquet needs column names).
    data : dask.dataframe.DataFrame
        The rows to encode, e.g. ``dask.dataframe.read_csv("photos-*.csv")``.
    path : str or path-like
        Folder of the Parquet files (created if missing); read the result with
        ``dask.dataframe.read_parquet(path)`` or ``pandas.read_parquet(path)``.
    progress : bool, default=True
        Show a progress bar of the partitions done.

    Returns
    -------
    files : list of str
        The Parquet file of every partition, in partition order.

    Examples
    --------
    >>> import pandas as pd, dask.dataframe as dd, tempfile
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skmm import MultimodalFusion
    >>> from skmm.parallel import encode_partitions
    >>> df = pd.DataFrame({"price": [1.0, 2.0, 3.0, 4.0]})
    >>> fusion = MultimodalFusion([("tabular", StandardScaler(), ["price"])]).fit(df)
    >>> folder = tempfile.mkdtemp()
    >>> files = encode_partitions(fusion, dd.from_pandas(df, npartitions=2), folder, progress=False)
    >>> [f.rsplit("/", 1)[-1] for f in files]
    ['part-00000.parquet', 'part-00001.parquet']
    >>> pd.read_parquet(folder).columns.tolist()
    ['tabular__price']
    """
    _require_dask()
    import dask
    from ._progress import progress as progress_bar

    check_is_fitted(transformer)
    if not hasattr(data, "to_delayed"):
        raise TypeError(
            f"data must be a Dask DataFrame, got {type(data).__name__}; convert a pandas DataFrame "
            "with dask.dataframe.from_pandas(df, npartitions=...)."
        )
    folder = Path(path).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    partitions = data.to_delayed()
    files = [folder / f"part-{number:05d}.parquet" for number in range(len(partitions))]
    todo = [(part, file) for part, file in zip(partitions, files) if not file.exists()]
    bar = progress_bar(len(files), initial=len(files) - len(todo), desc="partitions", unit="part",
                       disable=not progress, delay=0)
    shared = dask.delayed(transformer, pure=True)  # sent to each worker once, not once per task
    tasks = [dask.delayed(_encode_partition)(shared, part, file) for part, file in todo]
    try:
        client = _active_client()
        if client is None:
            for task in tasks:  # one partition at a time: memory stays bounded, progress is exact
                task.compute()
                bar.update(1)
        else:
            from dask.distributed import as_completed

            for future in as_completed(client.compute(tasks)):
                future.result()  # raises the worker's error, if any
                bar.update(1)
    finally:
        bar.close()
    return [str(file) for file in files]


def _active_client():
    """The active ``dask.distributed`` client, or None (not installed, or none started)."""
    try:
        from dask.distributed import get_client
    except ImportError:
        return None
    try:
        return get_client()
    except ValueError:
        return None
