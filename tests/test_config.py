"""Configs: base: inheritance, paths relative to the config file or ${data_root}, one-line errors."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from facepoints.config import ConfigError, data_root, display_path, load_config
from facepoints.datasets import DatasetSpec
from facepoints.errors import UserError
from facepoints.recipe import TrainConfig, load_train_config

ROOT = Path(__file__).resolve().parents[1]


def test_kaggle15_builds_on_default_and_keeps_its_own_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEPOINTS_DATA", "/data/faces")
    base = load_train_config(ROOT / "configs" / "default.yaml")
    k = load_train_config(ROOT / "configs" / "kaggle15.yaml")
    assert (k.name, k.out_dir, k.data.scheme, k.data.conventions, k.data.repeat) == (
        "kaggle15", "runs/kaggle15", "kaggle15", ["300w", "youtube"], {"300w": 2})
    assert k.data.val == [] and k.data.val_fraction == 0.1  # held-out training faces, never a test set
    assert k.data.train == base.data.train
    assert k.init_from == str(ROOT / "checkpoints" / "default.pt")
    assert (k.optim.lr, k.optim.epochs, k.optim.warmup_epochs, k.augment.rotate, k.augment.occlusion_p) == (
        1e-3, 10, 1, 30.0, 0.3)
    # everything kaggle15 does not say comes from default.yaml
    assert k.model == base.model and k.threads == 1 and base.threads == 2 and k.channels_last  # 2: for its teacher
    assert (k.optim.heatmap_weight, k.optim.batch_size, k.augment.flip) == (1.0, 64, 0.5)


def test_default_config_means_what_it_meant(monkeypatch: pytest.MonkeyPatch) -> None:
    """The running default recipe: same data, same split settings, conventions and repeat."""
    monkeypatch.delenv("FACEPOINTS_DATA", raising=False)
    cfg = load_train_config(ROOT / "configs" / "default.yaml")
    shared = ROOT.parent / "shared" / "data"
    assert [d.path for d in cfg.data.train] == [str(shared / "youtube-faces-68" / "training_frames_keypoints.csv"),
                                                str(shared / "300w-68" / "helen" / "trainset")]
    assert [d.convention for d in cfg.data.train] == ["youtube", "300w"]
    assert (cfg.data.val, cfg.data.val_fraction, cfg.data.conventions, cfg.data.repeat) == (
        [], 0.1, ["300w", "youtube"], {"300w": 2})


def test_paths_resolve_against_the_config_file_from_any_folder(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "project" / "configs"
    folder.mkdir(parents=True)
    (folder / "base.yaml").write_text("data:\n  train: [{path: ../faces/train.csv}]\n  scheme: ../my.yaml\n")
    (folder / "run.yaml").write_text("base: base.yaml\nname: mine\ninit_from: ../ck/start.pt\n")
    monkeypatch.chdir(tmp_path)  # anywhere but the project
    cfg = load_train_config(folder / "run.yaml", ["data.val=[{path: here.csv}]"])
    assert cfg.data.train[0].path == str(tmp_path / "project" / "faces" / "train.csv")
    assert cfg.data.scheme == str(tmp_path / "project" / "my.yaml")  # a YAML scheme file resolves, a name does not
    assert cfg.init_from == str(tmp_path / "project" / "ck" / "start.pt")
    assert cfg.data.val[0].path == str(tmp_path / "here.csv")  # command-line paths: the working directory
    assert cfg.name == "mine" and cfg.out_dir == "runs/run"  # outputs stay relative to where the run starts


def test_data_root_honours_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACEPOINTS_DATA", str(tmp_path))
    assert data_root() == tmp_path
    cfg = load_train_config(None, ["data.train=[{path: '${data_root}/a/b.csv'}]"])
    assert cfg.data.train[0].path == str(tmp_path / "a" / "b.csv")
    assert display_path(str(tmp_path / "a" / "b.csv")) == "${data_root}/a/b.csv"
    assert display_path("/elsewhere/x.csv") == "/elsewhere/x.csv"
    monkeypatch.delenv("FACEPOINTS_DATA")
    assert data_root() == ROOT.parent / "shared" / "data"


def test_config_mistakes_are_one_line_user_errors(tmp_path: Path) -> None:
    cases = {
        "missing": lambda: load_train_config(tmp_path / "nope.yaml"),
        "misspelt key": lambda: load_train_config(None, ["optim.lrr=1"]),
        "bad value": lambda: load_train_config(None, ["optim.epochs=many"]),
        "bad yaml": lambda: load_train_config(_write(tmp_path / "bad.yaml", "a: [1,\n")),
        "base loop": lambda: load_train_config(_write(tmp_path / "loop.yaml", "base: loop.yaml\n")),
        "not a mapping": lambda: load_train_config(_write(tmp_path / "list.yaml", "- 1\n")),
    }
    for what, call in cases.items():
        with pytest.raises(UserError) as e:
            call()
        assert isinstance(e.value, ConfigError), what
        assert "\n" not in str(e.value) and str(e.value), what
    with pytest.raises(ConfigError, match="nope.yaml does not exist"):
        cases["missing"]()
    with pytest.raises(ConfigError, match="unknown key.*lrr"):
        cases["misspelt key"]()


def test_video_config_is_unaffected() -> None:
    from facepoints.apps.video import VideoConfig

    assert load_config(VideoConfig, ROOT / "configs" / "video.yaml") == VideoConfig()


def test_training_config_refuses_runs_that_cannot_train(tmp_path: Path) -> None:
    from facepoints.recipe import check_config
    from facepoints.schemes import load_scheme

    for override, message in (("optim.epochs=-1", "optim.epochs must be at least 1"),
                              ("optim.epochs=0", "optim.epochs must be at least 1"),
                              ("optim.batch_size=0", "batch_size"), ("optim.loss=huber", "optim.loss"),
                              ("data.val_fraction=1.5", "val_fraction"),
                              ("optim.star_weight=1", "needs a heatmap model"),
                              ("optim.coord_weight=0", "one of them > 0")):
        cfg = load_train_config(ROOT / "configs" / "seed_baseline.yaml", [override])
        with pytest.raises(ConfigError, match=message):
            check_config(cfg, load_scheme(cfg.data.scheme))
    assert isinstance(TrainConfig(), TrainConfig)


def test_an_empty_override_clears_a_path() -> None:
    """``-o teacher=`` turns distillation off (it once became None and failed as 'no checkpoint file None')."""
    assert load_train_config(ROOT / "configs" / "default.yaml").teacher.endswith("teacher_v11.pt")
    assert load_train_config(ROOT / "configs" / "default.yaml", ["teacher="]).teacher == ""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_relative_paths_in_saved_run_configs_are_absolute(tmp_path: Path) -> None:
    """A run's saved config.yaml can be reloaded from anywhere (its paths are absolute)."""
    from facepoints.config import save_config

    cfg = load_train_config(None, ["data.train=[{path: faces.csv}]"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_train_config(tmp_path / "config.yaml")
    assert again.data.train[0].path == cfg.data.train[0].path == os.path.join(os.getcwd(), "faces.csv")


def test_shipped_configs_find_the_real_data_from_any_folder(real_data: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("default", "kaggle15", "seed_baseline"):
        cfg = load_train_config(ROOT / "configs" / f"{name}.yaml")
        for spec in cfg.data.train + cfg.data.val:
            assert Path(spec.path).exists(), (name, spec.path)
            assert Path(spec.path).resolve().is_relative_to(real_data.resolve())


def test_detector_configs_find_the_real_data_from_any_folder(real_data: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from facepoints.detector_train import load_detector_config

    monkeypatch.chdir(tmp_path)
    for name in ("detector", "detector_finetune", "detector_wide", "detector_points", "detector_lean"):
        cfg = load_detector_config(ROOT / "configs" / f"{name}.yaml")
        for spec in cfg.data.train:
            assert Path(spec.path).exists(), (name, spec.path)
            assert Path(spec.path).resolve().is_relative_to(real_data.resolve())


def test_verifier_config_finds_its_detector_recipe_from_any_folder(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from facepoints.verifier_train import load_verifier_config

    monkeypatch.chdir(tmp_path)
    cfg = load_verifier_config(ROOT / "configs" / "verifier.yaml")
    assert Path(cfg.data.detector_config) == ROOT / "configs" / "detector_wide.yaml"
    assert cfg.data.detector == ""  # '' stays '' (the shipped detector), not the config's folder


def _comparable(value: object) -> object:
    """A stored or loaded config value with paths cut to their file names: checkouts and data roots differ."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, str) and "/" in value:
        return Path(value).name
    return value


def _differences(recipe: object, saved: object, default: object, where: str = "") -> list[str]:
    """Where a recipe differs from a checkpoint's saved config; a key the checkpoint predates must hold its default."""
    if isinstance(recipe, dict):
        saved, default = saved if isinstance(saved, dict) else {}, default if isinstance(default, dict) else {}
        return [d for k in recipe for d in _differences(recipe[k], saved.get(k), default.get(k), f"{where}.{k}")]
    if isinstance(recipe, list) and isinstance(saved, list) and len(recipe) == len(saved):
        item = dataclasses.asdict(DatasetSpec(path=""))  # the only lists of records are dataset lists
        return [d for i, (r, s) in enumerate(zip(recipe, saved)) for d in _differences(r, s, item, f"{where}[{i}]")]
    if saved is None and recipe == default:
        return []
    return [] if recipe == saved else [f"{where}: recipe {recipe!r}, checkpoint {saved!r}"]


@pytest.mark.parametrize("checkpoint", ["accurate", "default", "fast", "input112", "kaggle15", "seed_baseline"])
def test_each_kept_checkpoint_is_what_its_config_trains(checkpoint: str) -> None:
    """One command retrains each shipped model: the config in configs/ is the recipe its checkpoint was trained by
    (up to where its files went: a candidate trains into its own folder before it is shipped)."""
    import torch

    ck = torch.load(ROOT / "checkpoints" / f"{checkpoint}.pt", map_location="cpu", weights_only=True)
    saved = _comparable(ck["config"])
    saved["model"]["kwargs"].pop("conventions", None)  # added by training from data.conventions
    recipe = _comparable(dataclasses.asdict(load_train_config(ROOT / "configs" / f"{saved['name']}.yaml")))
    saved.pop("out_dir"), recipe.pop("out_dir")
    default = _comparable(dataclasses.asdict(TrainConfig()))
    if saved.get("teacher") and recipe["teacher"]:  # `fast` was taught by runs/input112/best.pt, kept as input112.pt
        saved["teacher"] = recipe["teacher"]
    assert _differences(recipe, saved, default) == []


def test_shipped_detector_is_what_its_config_trains() -> None:
    """`facepoints train-detector configs/<its name>.yaml` retrains the shipped detector: one command, no overrides
    but where its files go and how many threads run them; the card's retrain command names that config."""
    import json

    import torch

    from facepoints.detector_train import DetectorTrainConfig, load_detector_config

    ck = torch.load(ROOT / "checkpoints" / "detector.pt", map_location="cpu", weights_only=True)
    config = ROOT / "configs" / f"{ck['config']['name']}.yaml"
    card = json.loads((ROOT / "facepoints" / "weights" / "detector.json").read_text(encoding="utf-8"))
    assert card["retrain"].startswith(f"facepoints train-detector configs/{config.name};")
    saved = _comparable(ck["config"])
    recipe = _comparable(dataclasses.asdict(load_detector_config(config)))
    default = _comparable(dataclasses.asdict(DetectorTrainConfig()))
    for runtime in ("out_dir", "threads", "workers"):
        saved.pop(runtime), recipe.pop(runtime)
    assert _differences(recipe, saved, default) == []
    assert ck["epoch"] + 1 == recipe["optim"]["epochs"]  # the last epoch of the schedule, not a resumed tail
