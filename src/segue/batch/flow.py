"""The daily batch run as a Metaflow flow.

    start (ingest; the last 30 days' online metrics from the exposure log) → dataset → train
    (two branches per candidate, side by side: evaluate on a held-out split; fit on all
    data) → choose (best NDCG@10) → gate → batch (top-k, daily mixes and,
    with a click model, campaign inputs for every user, Parquet) → publish (registry version
    with those lists; load them into the store and the online state; promote) → end

Run it with ``segue flow run --date 2026-11-30`` (which sets the local datastore under the
data directory) or, with that environment set, ``python -m segue.batch.flow run``. Every run's
parameters, data summary, metrics and artifacts are recorded by Metaflow; ``segue runs``
lists them. A gate refusal fails the run at the ``gate`` step: nothing is published and
production keeps serving.
"""

from __future__ import annotations

from metaflow import FlowSpec, Parameter, current, step

PARAMETERS = (
    "date",
    "models",
    "engine",
    "k",
    "ingest",
    "lastfm_dir",
    "synth_users",
    "synth_tracks",
    "synth_events",
    "seed",
    "eval_users",
    "registry_name",
    "margin",
    "promote",
    "force",
    "spark_master",
    "spark_memory",
)


class DailyFlow(FlowSpec):
    """Ingest, train, evaluate, gate, batch-recommend and publish one day."""

    date = Parameter("date", help="Day to compute (YYYY-MM-DD, UTC); data up to its end.",
                     default="today")  # fmt: skip
    models = Parameter("models", help="Comma-separated candidate models.", default="als,itemknn")
    engine = Parameter("engine", help="in-process or spark (ALS only).", default="in-process")
    k = Parameter("k", help="Length of the batch lists.", default=10, type=int)
    ingest = Parameter("ingest", help="none, synthetic or lastfm.", default="none")
    lastfm_dir = Parameter("lastfm-dir", help="Folder of the Last.fm 2K files.", default="")
    synth_users = Parameter("synth-users", default=2000, type=int)
    synth_tracks = Parameter("synth-tracks", default=4000, type=int)
    synth_events = Parameter("synth-events", default=200_000, type=int)
    seed = Parameter("seed", help="Seed for the synthetic world and the split.", default=0,
                     type=int)  # fmt: skip
    # the default is segue.batch.daily.EVAL_USERS (not imported here: steps import lazily)
    eval_users = Parameter("eval-users", help="Held-out users the gate's metrics are taken "
                           "over (a seeded draw); 0: every one.", default=100_000,
                           type=int)  # fmt: skip
    registry_name = Parameter("registry-name", help="Registry entry to publish to.",
                              default="daily")  # fmt: skip
    margin = Parameter("margin", help="Tolerated relative drop of NDCG@10.", default=0.05,
                       type=float)  # fmt: skip
    promote = Parameter("promote", help="Promote the new version.", default=True, type=bool)
    force = Parameter("force", help="Publish even if the gate refuses.", default=False, type=bool)
    spark_master = Parameter("spark-master", help="Spark master URL.", default="local[2]")
    spark_memory = Parameter("spark-memory", help="Spark driver/executor memory.", default="2g")

    # -- helpers (not steps) --------------------------------------------------------------
    def _settings(self):
        from segue.config import load_settings

        return load_settings()

    def _plan(self):
        from segue.batch.daily import DayPlan, parse_date, parse_models

        return DayPlan(
            parse_date(self.date),
            parse_models(self.models),
            self.engine,
            self.k,
            self.seed,
            self.eval_users,
        )

    def _spark(self):
        if self.engine != "spark":
            return None
        from segue.models.spark_als import SparkConfig

        settings = self._settings()
        work = settings.data_dir.resolve() / "flows" / current.run_id / "spark"
        work.mkdir(parents=True, exist_ok=True)
        return SparkConfig(
            master=self.spark_master,
            driver_memory=self.spark_memory,
            executor_memory=self.spark_memory,
            work_dir=str(work),
        )

    # -- steps ----------------------------------------------------------------------------
    @step
    def start(self):
        """Check the parameters, bring the day's data into the store, and measure what the
        lists served in the last 30 days led to (``segue.batch.online``)."""
        from pathlib import Path

        from segue.batch.daily import ingest_source
        from segue.batch.online import write_online_metrics
        from segue.data.synth import SynthParams
        from segue.store import masked, open_store

        plan = self._plan()  # a bad parameter fails here, before any work
        self.parameter_names = list(PARAMETERS)
        self.day = plan.date.isoformat()
        settings = self._settings()
        self.store_url = masked(settings.resolved_database_url)
        self.work_dir = str(settings.data_dir.resolve() / "flows" / current.run_id)
        store = open_store(settings.resolved_database_url)
        synth = SynthParams(
            seed=self.seed,
            n_users=self.synth_users,
            n_tracks=self.synth_tracks,
            n_events=self.synth_events,
        )
        lastfm = Path(self.lastfm_dir) if self.lastfm_dir else None
        self.ingested = ingest_source(store, self.ingest, lastfm_dir=lastfm, synth=synth)
        self.online = write_online_metrics(store, settings.data_dir, plan.date)
        self.next(self.dataset)

    @step
    def dataset(self):
        """Snapshot the interactions up to the end of the day for every later step."""
        from pathlib import Path

        from segue.batch.daily import snapshot_dataset, training_jobs
        from segue.store import open_store

        store = open_store(self._settings().resolved_database_url)
        self.snapshot = str(Path(self.work_dir) / "dataset.pkl")
        self.data_summary = snapshot_dataset(store, self._plan(), Path(self.snapshot))
        self.jobs = training_jobs(self._plan())
        self.next(self.train, foreach="jobs")

    @step
    def train(self):
        """One candidate's gate metrics on a held-out split, or its fit on all the data: the
        two run as separate tasks, side by side (``segue.batch.daily.TRAINING_ROLES``)."""
        from pathlib import Path

        from segue.batch.daily import evaluate_candidate, load_snapshot, train_candidate
        from segue.dataset.from_store import load_side_info
        from segue.registry.tuned import load_tuned, with_hybrid
        from segue.store import open_store

        name, role = self.input
        plan = self._plan()
        data = load_snapshot(Path(self.snapshot))
        side = load_side_info(open_store(self._settings().resolved_database_url), data)
        spark = self._spark()
        # settings from `segue tune` where there are some; the defaults otherwise
        in_process = plan.engine == "in-process"
        entries = load_tuned(self._settings().data_dir) if in_process else {}
        params = with_hybrid({n: e["params"] for n, e in entries.items()}).get(name)
        self.result = {"name": name, "role": role}
        if role == "gate":
            self.result["metrics"] = evaluate_candidate(
                data, name, plan, side=side, spark=spark, params=params
            )
        else:
            tuned = entries.get(name)
            if tuned is None and params:  # a hybrid of tuned components: their entries
                tuned = {"components": {c: entries[c] for c in params["component_params"]}}
            model_dir = Path(self.work_dir) / "models"
            trained = train_candidate(
                data, name, plan, model_dir, side=side, spark=spark, params=params
            )
            self.result |= {
                "order": plan.models.index(name),
                "tuned": tuned,
                "params": trained.model.params(),
                "fit_seconds": trained.fit_seconds,
                "model_dir": str(model_dir),
            }
        self.next(self.choose)

    @step
    def choose(self, inputs):
        """The best candidate by the gate's metric."""
        from segue.batch.daily import best_candidate, joined_results
        from segue.batch.lifecycle import KEY_METRIC

        self.merge_artifacts(
            inputs, include=["work_dir", "data_summary", "day", "store_url", "online"]
        )
        self.results = joined_results([i.result for i in inputs])
        self.chosen = best_candidate(self.results, KEY_METRIC)
        self.next(self.gate)

    @step
    def gate(self):
        """Refuse (fail the run, publish nothing) when NDCG@10 drops past the margin."""
        from segue.batch.lifecycle import GateRefused, check_gate
        from segue.registry import ModelRegistry, default_registry_root

        registry = ModelRegistry(default_registry_root(self._settings()))
        decision = check_gate(
            self.chosen["metrics"],
            registry.production(self.registry_name),
            margin=self.margin,
        )
        self.gate_decision = {
            "passed": decision.passed,
            "reason": decision.reason,
            "baseline": decision.baseline,
            "baseline_version": decision.baseline_version,
        }
        print(f"gate: {decision.reason}")
        if not decision.passed and not self.force:
            raise GateRefused(decision)
        self.next(self.batch)

    @step
    def batch(self):
        """Every user's top-k (``<data_dir>/batch``), daily mixes (``mixes``) and campaign
        inputs (``campaigns``; skipped with a note while no click model exists), as Parquet."""
        from pathlib import Path

        from segue.batch.daily import batch_recommendations, load_candidate
        from segue.batch.lists import batch_path
        from segue.batch.publish import (
            MIX,
            NBA,
            batch_campaign,
            batch_lists_and_mixes,
            batch_mixes,
            mix_workers,
            output_path,
        )
        from segue.dataset.from_store import load_side_info
        from segue.store import open_store

        plan = self._plan()
        settings = self._settings()
        data_dir = settings.data_dir.resolve()
        model_dir = Path(self.chosen["model_dir"])
        out = batch_path(data_dir, plan.date, self.registry_name)
        mixes = output_path(data_dir, MIX, plan.date, self.registry_name)
        campaign = output_path(data_dir, NBA, plan.date, self.registry_name)
        trained = load_candidate(model_dir, self.chosen["name"])
        with open_store(settings.resolved_database_url) as store:
            # item attributes and the user table, read once for the kids rule and the mixes
            side = load_side_info(store, users=trained.users, items=trained.items, friends=False)
            if plan.engine == "in-process":  # each listener scored once for list and mixes
                self.batch_rows, written = batch_lists_and_mixes(
                    trained, out, mixes, plan.date, k=plan.k, side=side, workers=mix_workers()
                )
                self.mix_rows = written.rows
            else:
                self.batch_rows = batch_recommendations(
                    trained, model_dir, plan, out, spark=self._spark(), side=side
                )
                self.mix_rows = batch_mixes(trained, mixes, plan.date, side=side).rows
            done = batch_campaign(
                store, data_dir / "models", campaign, plan.date, campaign=self.registry_name
            )
        self.batch_output = str(out)
        self.mixes_output = str(mixes)
        self.campaign_output = str(campaign) if done.inputs else None
        self.campaign_rows = done.inputs.rows if done.inputs else 0
        self.campaign_note = done.skipped
        if done.skipped:
            print(f"campaign: {done.skipped}")
        self.next(self.publish)

    @step
    def publish(self):
        """A registry version with the model, its manifest and the day's lists; the lists
        into the store (and, for a version to promote, the online state); then promote.

        Promotion comes last: a failure before it leaves production and its lists serving.
        """
        from pathlib import Path

        from segue.batch.daily import load_candidate
        from segue.batch.lifecycle import (
            CAMPAIGN,
            MIXES,
            RECOMMENDATIONS,
            build_manifest,
            publish_trained,
        )
        from segue.batch.publish import online_state_for_publish, publish_version
        from segue.registry import ModelRegistry, default_registry_root
        from segue.store import open_store

        settings = self._settings()
        registry = ModelRegistry(default_registry_root(settings))
        trained = load_candidate(Path(self.chosen["model_dir"]), self.chosen["name"])
        manifest = build_manifest(
            trained,
            self.chosen["metrics"],
            data=self.data_summary,
            engine=self.engine,
            extra={
                "params": self.chosen["params"],
                # segue tune's entry the params came from (score, date, data); null: defaults
                "tuned": self.chosen.get("tuned"),
                "fit_seconds": round(self.chosen["fit_seconds"], 3),
                "date": self.day,
                "flow": f"DailyFlow/{current.run_id}",
                "candidates": {r["name"]: r["metrics"].get("ndcg@10") for r in self.results},
                "batch_rows": self.batch_rows,
                "mix_rows": self.mix_rows,
                "campaign_rows": self.campaign_rows,
                "campaign_note": self.campaign_note,
            },
        )
        artifacts = {RECOMMENDATIONS: Path(self.batch_output), MIXES: Path(self.mixes_output)}
        if self.campaign_output:
            artifacts[CAMPAIGN] = Path(self.campaign_output)
        version, _ = publish_trained(
            registry,
            self.registry_name,
            trained,
            manifest,
            promote=False,
            margin=self.margin,
            force=self.force,
            artifacts=artifacts,
        )
        state, note = online_state_for_publish(settings) if self.promote else (None, None)
        try:
            with open_store(settings.resolved_database_url) as store:
                report = publish_version(store, version, state)
        finally:
            if state is not None:
                state.close()
        self.published = {
            "stored": report.stored,
            "online": report.online,
            "seconds": round(report.seconds, 3),
            "notes": [n for n in (note, *report.notes) if n],
        }
        if self.promote:
            registry.promote(self.registry_name, version.version)
        self.version = version.version
        self.promoted = bool(self.promote)
        self.next(self.end)

    @step
    def end(self):
        """A one-dictionary summary for ``segue runs``; the run's scratch folder goes.

        (The model and the lists live on in the registry; a failed run keeps its folder
        under ``<data_dir>/flows/<run id>`` for inspection.)
        """
        import shutil

        from segue.batch.lifecycle import KEY_METRIC

        shutil.rmtree(self.work_dir, ignore_errors=True)
        self.summary = {
            "date": self.day,
            "model": self.chosen["name"],
            KEY_METRIC: self.chosen["metrics"].get(KEY_METRIC),
            "version": self.version,
            "promoted": self.promoted,
            "batch_rows": self.batch_rows,
            "mix_rows": self.mix_rows,
            "campaign_rows": self.campaign_rows,
            "published": self.published,
            "online": self.online,
            "events": self.data_summary.get("events"),
        }
        if self.campaign_note:
            self.summary["campaign"] = self.campaign_note
        print(f"published {self.registry_name} {self.version}: {self.summary}")


if __name__ == "__main__":
    DailyFlow()
