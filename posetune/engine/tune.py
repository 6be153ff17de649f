"""Hyper-parameter search with Optuna over ``tune.search_space``.

Each key of the search space is a config key path; each value a distribution:
``{type: loguniform|uniform|int|categorical, low, high, step, choices}``. Every trial is a
real (short) training run; intermediate validation values are reported to Optuna so the
median pruner can stop bad trials early. Results: ``trials.csv``, ``best_config.yaml`` and a
table printed at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L

from posetune.config import Config, config_from_dict, dump_yaml
from posetune.config.loader import apply_overrides
from posetune.errors import ConfigError
from posetune.io_utils import write_text_atomic


def suggest(trial: Any, key: str, dist: dict[str, Any]) -> Any:
    kind = dist.get("type", "uniform")
    try:
        if kind == "loguniform":
            return trial.suggest_float(key, float(dist["low"]), float(dist["high"]), log=True)
        if kind == "uniform":
            return trial.suggest_float(key, float(dist["low"]), float(dist["high"]), step=dist.get("step"))
        if kind == "int":
            return trial.suggest_int(key, int(dist["low"]), int(dist["high"]), step=int(dist.get("step", 1)),
                                     log=bool(dist.get("log", False)))
        if kind == "categorical":
            return trial.suggest_categorical(key, list(dist["choices"]))
    except KeyError as e:
        raise ConfigError(f"distribution '{kind}' needs '{e.args[0]}'", where=f"config key tune.search_space.{key}",
                          hint="e.g. {type: loguniform, low: 1e-5, high: 1e-2}") from None
    raise ConfigError(f"unknown distribution type '{kind}'", where=f"config key tune.search_space.{key}.type",
                      hint="use loguniform, uniform, int or categorical")


class OptunaPruning(L.Callback):
    """Report the monitored validation value each epoch; stop the trial when Optuna prunes it."""

    def __init__(self, trial: Any, monitor: str):
        self.trial = trial
        self.monitor = monitor

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import optuna

        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        self.trial.report(value, step=trainer.current_epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {trainer.current_epoch} ({self.monitor}={value:.4g})")


def trial_config(cfg: Config, params: dict[str, Any], out: Path) -> Config:
    data = cfg.to_dict()
    data = apply_overrides(data, [f"{k}={dump_yaml(v).strip() if not isinstance(v, str) else v}"
                                  for k, v in params.items()])
    data["out"] = str(out)
    if cfg.tune.epochs:
        data["train"]["epochs"] = cfg.tune.epochs
    data["train"]["progress"] = False
    return config_from_dict(data, source="tune.search_space")


def run_study(cfg: Config, out_dir: str | Path = "runs/tune", datamodule_factory: Any = None) -> dict[str, Any]:
    import optuna

    from posetune.engine.fit import train

    space = cfg.tune.search_space
    if not space:
        raise ConfigError("tune.search_space is empty", where="config key tune.search_space",
                          hint="add e.g. train.optimizer.lr: {type: loguniform, low: 1e-5, high: 1e-2}")
    for key in space:  # every key must be a real config key: validate with a dry override
        trial_config(cfg, {key: _example(space[key])}, Path(out_dir))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1) if cfg.tune.pruning \
        else optuna.pruners.NopPruner()
    study = optuna.create_study(direction=cfg.tune.direction, pruner=pruner,
                                sampler=optuna.samplers.TPESampler(seed=cfg.seed))
    metric = cfg.tune.metric
    better = min if cfg.tune.direction == "minimize" else max

    def objective(trial: optuna.Trial) -> float:
        params = {k: suggest(trial, k, d) for k, d in space.items()}
        tcfg = trial_config(cfg, params, out_dir / f"trial_{trial.number:03d}")
        dm = datamodule_factory(tcfg) if datamodule_factory else None
        result = train(tcfg, datamodule=dm, extra_callbacks=[OptunaPruning(trial, metric)], progress=False,
                       quiet=True)
        values = [r[metric] for r in result.rows if r.get(metric) is not None]
        if not values:
            raise ConfigError(f"metric '{metric}' was never logged", where="config key tune.metric",
                              hint="use val_loss, val_PCK@0.05, val_AP or train_loss")
        return better(values)

    study.optimize(objective, n_trials=cfg.tune.n_trials, timeout=cfg.tune.timeout_s, catch=())
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise ConfigError("no trial completed", where="tune", hint="raise tune.n_trials or turn pruning off")
    best = study.best_trial
    best_cfg = trial_config(cfg, best.params, Path(cfg.out or "runs") / cfg.name)
    best_dict = best_cfg.to_dict()
    best_dict["out"] = cfg.out
    best_dict["train"]["progress"] = cfg.train.progress
    best_dict["train"]["epochs"] = cfg.train.epochs
    best_path = write_text_atomic(out_dir / "best_config.yaml", dump_yaml(best_dict))
    df = study.trials_dataframe()
    trials_csv = out_dir / "trials.csv"
    write_text_atomic(trials_csv, df.to_csv(index=False))
    _print_table(study, metric)
    return {"best_value": best.value, "best_params": best.params, "best_config": best_path,
            "trials_csv": trials_csv, "n_complete": len(done),
            "n_pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)}


def _example(dist: dict[str, Any]) -> Any:
    if dist.get("type") == "categorical":
        return list(dist.get("choices") or [None])[0]
    return dist.get("low", 0)


def _print_table(study: Any, metric: str) -> None:
    from rich.table import Table

    from posetune.cli.console import out

    keys = sorted({k for t in study.trials for k in t.params})
    table = Table(title=f"optuna study ({metric})")
    table.add_column("trial", justify="right")
    table.add_column("state")
    table.add_column(metric, justify="right")
    for k in keys:
        table.add_column(k)
    for t in study.trials:
        table.add_row(str(t.number), t.state.name.lower(), f"{t.value:.4g}" if t.value is not None else "-",
                      *[f"{t.params[k]:.4g}" if isinstance(t.params.get(k), float) else str(t.params.get(k, "-"))
                        for k in keys])
    out.print(table)
