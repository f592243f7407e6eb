"""ALS on Spark (``pyspark.ml.recommendation.ALS``, implicit preferences) for data that
outgrows one machine, and batch scoring of every user with Spark.

The trained factors come back as a segue :class:`~segue.models.mf.ALSRecommender`, so a
Spark-trained model is evaluated by the same code as the in-process one, saved and published
through the registry in the same format, and served by the same API. Only training and the
all-users scoring run on Spark.

pyspark is imported inside the functions: nothing else in segue starts a JVM.

Differences from the in-process ALS worth knowing: Spark's confidence is ``1 + alpha·r`` and
its regularisation is scaled by each user's (item's) number of ratings (ALS-WR), so its
``regularization`` is on another scale (≈0.01–0.1) than ``implicit``'s. A Spark-trained model
saved as ``als`` folds new users in with ``implicit``'s unscaled formula; that is an
approximation for the cold-start path only.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from segue.dataset import IdMap, SideInfo
from segue.errors import SegueError
from segue.extras import require
from segue.models.mf import ALSRecommender

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Batch scoring over-fetches up to this many items beyond k, to drop played ones. Exact for
#: users who played no more; a heavier user whose played items crowd the top k + 200 gets a
#: shorter list. (Over-fetching by the longest history made the 1M-event benchmark's scoring
#: step explode 20M candidate rows.)
MAX_OVERFETCH = 200


@dataclass(frozen=True)
class SparkConfig:
    """Where Spark runs. ``master``: ``local[N]``, ``spark://host:7077``, ``yarn``, ``k8s://…``.

    ``work_dir`` holds the ratings handed to Spark and its checkpoints; on a cluster it must be
    shared storage every executor reads (``hdfs://``, ``s3a://`` or an NFS path).
    """

    master: str = "local[2]"
    driver_memory: str = "2g"
    executor_memory: str = "2g"
    work_dir: str | None = None
    #: Shuffle partitions and ALS blocks: about 2 per core (Spark's 200 suit clusters only).
    partitions: int = 4
    conf: Mapping[str, str] = field(default_factory=dict)


def java_available() -> bool:
    """Whether a JVM can be started (Spark needs Java 17+)."""
    import shutil

    return bool(os.environ.get("JAVA_HOME")) or shutil.which("java") is not None


def spark_session(config: SparkConfig = SparkConfig()) -> SparkSession:
    """A session for ``config``; one per process (Spark reuses an active session)."""
    require("spark", "Spark ALS (--engine spark)")
    if not java_available():
        raise SegueError(
            "--engine spark needs Java 17 or newer (set JAVA_HOME or put java on PATH)"
        )
    from pyspark.sql import SparkSession

    # Python workers (if any step needs them) must be this interpreter, not python3 on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(config.master)
        .appName("segue-als")
        .config("spark.driver.memory", config.driver_memory)
        .config("spark.executor.memory", config.executor_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", str(config.partitions))
        .config("spark.default.parallelism", str(config.partitions))
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.extraJavaOptions", "-Xss16m")
    )
    for key, value in config.conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


class SparkALSRecommender(ALSRecommender):
    """ALS fitted by Spark; afterwards an ordinary (saved-as-``als``) segue ALS model.

    ``spark_model`` keeps the Spark ``ALSModel`` of the last fit (see
    :func:`save_spark_model`); the segue model saved with ``save`` holds only the factors.
    """

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 2.0,
        iterations: int = 10,
        random_state: int = 0,
        num_threads: int = 0,
        *,
        spark: SparkConfig | None = None,
    ) -> None:
        super().__init__(factors, regularization, alpha, iterations, random_state, num_threads)
        self.spark_config = spark or SparkConfig()
        self.spark_model: Any = None
        self.ratings_path: str | None = None

    def fit(self, interactions: sp.csr_matrix, side: SideInfo | None = None) -> Self:
        from pyspark.ml.recommendation import ALS

        train = interactions.tocsr().astype(np.float32)
        spark = spark_session(self.spark_config)
        work = self.spark_config.work_dir or tempfile.mkdtemp(prefix="segue-spark-")
        ratings = write_ratings(train, os.path.join(work, f"ratings-{os.getpid()}-{id(self)}"))
        spark.sparkContext.setCheckpointDir(os.path.join(work, "checkpoints"))
        frame = spark.read.parquet(ratings)
        als = ALS(
            rank=self.factors,
            maxIter=self.iterations,
            regParam=self.regularization,
            alpha=self.alpha,
            implicitPrefs=True,
            userCol="user",
            itemCol="item",
            ratingCol="rating",
            seed=self.random_state,
            coldStartStrategy="drop",
            checkpointInterval=5,
            numUserBlocks=self.spark_config.partitions,
            numItemBlocks=self.spark_config.partitions,
        )
        model = als.fit(frame)
        self.user_factors = _factors(model.userFactors, train.shape[0], self.factors, work)
        self.item_factors = _factors(model.itemFactors, train.shape[1], self.factors, work)
        self.spark_model = model
        self.ratings_path = ratings
        self._train = train
        return self


def write_ratings(matrix: sp.csr_matrix, path: str) -> str:
    """The matrix's stored entries as a (user, item, rating) Parquet folder Spark reads."""
    coo = matrix.tocoo()
    table = pa.table(
        {
            "user": coo.row.astype(np.int32),
            "item": coo.col.astype(np.int32),
            "rating": coo.data.astype(np.float32),
        }
    )
    Path(path).mkdir(parents=True, exist_ok=True)
    pq.write_table(table, os.path.join(path, "part-0.parquet"))
    return path


def _factors(frame: DataFrame, n: int, rank: int, work: str) -> np.ndarray:
    """Spark's (id, features) rows into an (n, rank) array; rows Spark never saw stay 0.

    Written as Parquet and read with pyarrow: no pandas needed, and no row-by-row collect.
    """
    path = tempfile.mkdtemp(prefix="factors-", dir=work)
    frame.write.mode("overwrite").parquet(path)
    table = pq.read_table(path)
    out = np.zeros((n, rank), dtype=np.float32)
    if table.num_rows:
        ids = table.column("id").to_numpy()
        values = table.column("features").combine_chunks().flatten().to_numpy()
        out[ids] = values.reshape(table.num_rows, rank)
    return out


def _write_ids(ids: IdMap, folder: Path, column: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            column: np.arange(len(ids), dtype=np.int32),
            f"{column}_id": pa.array([str(v) for v in ids.ids], pa.string()),
        }
    )
    pq.write_table(table, folder / "part-0.parquet")
    return str(folder)


def save_spark_model(model: SparkALSRecommender, path: str) -> None:
    """Keep the Spark ALS model (for scoring in a later step or process)."""
    if model.spark_model is None:
        raise SegueError("save_spark_model needs a SparkALSRecommender fitted in this process")
    model.spark_model.write().overwrite().save(path)


def spark_recommend(
    model_path: str,
    ratings_path: str,
    train: sp.csr_matrix,
    users: IdMap,
    items: IdMap,
    out: str,
    *,
    k: int,
    date: dt.date,
    name: str = "als",
    config: SparkConfig = SparkConfig(),
    skip_users: np.ndarray | None = None,
) -> int:
    """Top ``k`` unplayed items for every trained user, scored by Spark, written as Parquet.

    ``skip_users`` (user rows) get no list here: those whose list a rule decides (no
    personalisation consent, kids profiles), which the caller writes beside it.

    Same columns as :mod:`segue.batch.lists` (``user_id, rank, item_id, score, model, date``).
    ``model_path`` is a saved Spark ``ALSModel``, ``ratings_path`` the ratings it was fitted
    on (to drop played items) and ``out`` a Parquet folder; on a cluster all three live on
    shared storage. ``train`` only tells how far to over-fetch. Returns the rows written.
    """
    from pyspark.ml.recommendation import ALSModel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spark = spark_session(config)
    model = ALSModel.load(model_path)
    seen_per_user = np.diff(train.indptr)
    overfetch = int(min(int(seen_per_user.max(initial=0)), MAX_OVERFETCH))
    ratings = spark.read.parquet(ratings_path).select("user", "item")
    recs = model.recommendForAllUsers(min(k + overfetch, len(items)))
    exploded = recs.select("user", F.explode("recommendations").alias("r")).select(
        "user", F.col("r.item").alias("item"), F.col("r.rating").alias("score")
    )
    unplayed = exploded.join(ratings, on=["user", "item"], how="left_anti")
    if skip_users is not None and len(skip_users):
        skipped = spark.createDataFrame(
            [(int(u),) for u in np.unique(skip_users)], schema="user int"
        )
        unplayed = unplayed.join(F.broadcast(skipped), on="user", how="left_anti")
    order = Window.partitionBy("user").orderBy(F.col("score").desc(), F.col("item"))
    ranked = unplayed.withColumn("rank", F.row_number().over(order)).where(F.col("rank") <= k)
    # id maps go to Spark as Parquet next to the model: no Python workers, no driver-side rows
    ids = Path(model_path).parent / "ids"
    user_ids = spark.read.parquet(_write_ids(users, ids / "users", "user"))
    item_ids = spark.read.parquet(_write_ids(items, ids / "items", "item"))
    result = (
        ranked.join(F.broadcast(user_ids), "user")
        .join(F.broadcast(item_ids), "item")
        .select(
            "user_id",
            F.col("rank").cast("short").alias("rank"),
            "item_id",
            F.col("score").cast("float").alias("score"),
            F.lit(name).alias("model"),
            F.lit(date.isoformat()).cast("date").alias("date"),
        )
    )
    result.write.mode("overwrite").parquet(out)
    return spark.read.parquet(out).count()
