"""Hostile model folders: a card's ``architecture`` never imports or runs code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch  # noqa: TID253

import napari_xai
from napari_xai.core.models.architectures import (
    ArchitectureError,
    get_architecture,
    register_architecture,
    registered_architectures,
    unregister_architecture,
)
from napari_xai.core.models.card import ModelCard
from napari_xai.core.models.demo import DEMO_ARCHITECTURE, demo_model_path, make_demo_cnn
from napari_xai.core.models.loading import ModelError, load_model

torch.set_num_threads(1)

HOSTILE = ["os:abort", "sys:exit", "this:s", "tempfile:mkdtemp", "evil_beside:make"]


def _folder(tmp_path: Path, architecture: str) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    torch.save(make_demo_cnn(3).state_dict(), folder / "model.pt")
    card = ModelCard(class_names=("a", "b", "c"), tile_size=32, mpp=1.0, architecture=architecture)
    card.to_json(folder / "config.json")
    marker = tmp_path / "MARKER"
    (folder / "evil_beside.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "def make(num_classes=3):\n    raise SystemExit(3)\n"
    )
    return folder


@pytest.mark.parametrize("spec", HOSTILE)
def test_hostile_architecture_is_refused_without_running_code(spec: str, tmp_path: Path) -> None:
    """In a fresh interpreter whose working directory is the model folder."""
    folder = _folder(tmp_path, spec)
    code = (
        "import sys, tempfile\n"
        "from napari_xai.core.models.loading import load_model, ModelError\n"
        "calls = []\n"
        "tempfile.mkdtemp = lambda *a, **k: calls.append('mkdtemp')\n"
        "before = set(sys.modules)\n"
        "try:\n"
        "    load_model('.', device='cpu')\n"
        "except ModelError as exc:\n"
        "    print('ERROR', exc)\n"
        "new = set(sys.modules) - before\n"
        "print('IMPORTED', sorted(m for m in new if m in ('this', 'evil_beside')))\n"
        "print('CALLS', calls)\n"
        "print('PATH', [p for p in sys.path if 'model' in p.split('/')[-1:]])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(napari_xai.__file__).parents[1])}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    message = lines["ERROR"]
    assert "config.json" in message
    assert f"unknown architecture {spec!r}" in message
    assert "registered architectures: " in message and "demo_cnn" in message
    assert lines["IMPORTED"] == "[]"
    assert lines["CALLS"] == "[]"
    assert lines["PATH"] == "[]"
    assert not (tmp_path / "MARKER").exists()
    assert "Zen of Python" not in proc.stdout  # `this` prints it when imported


def test_registered_and_builtin_names_load(tmp_path: Path) -> None:
    assert "demo_cnn" in registered_architectures()
    assert DEMO_ARCHITECTURE in registered_architectures()  # cards written before the registry
    assert get_architecture("demo_cnn") is get_architecture(DEMO_ARCHITECTURE)
    model = load_model(demo_model_path(), device="cpu")
    assert model.card.class_names == ("background", "normal", "tumour")


def test_register_architecture_decorator_and_call(tmp_path: Path) -> None:
    calls: list[int] = []

    @register_architecture("test_hostile_net")
    def make(num_classes: int = 3) -> torch.nn.Module:
        calls.append(num_classes)
        return make_demo_cnn(num_classes)

    try:
        folder = _folder(tmp_path, "test_hostile_net")
        model = load_model(folder, device="cpu")
        assert calls == [3] and model.card.architecture == "test_hostile_net"
        with pytest.raises(ArchitectureError, match="already registered"):
            register_architecture("test_hostile_net", make)
        with pytest.raises(ArchitectureError, match="already registered"):
            register_architecture("demo_cnn", make)
        with pytest.raises(ArchitectureError, match="not callable"):
            register_architecture("other", 3)  # type: ignore[call-overload]
    finally:
        unregister_architecture("test_hostile_net")
    with pytest.raises(ModelError, match="unknown architecture 'test_hostile_net'"):
        load_model(folder, device="cpu")


def test_entry_point_architecture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed distribution adds a name through the entry point group."""
    dist = tmp_path / "site" / "xai_plugin_arch-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: xai-plugin-arch\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[napari_xai.architectures]\n"
        "ep_demo = napari_xai.core.models.demo:make_demo_cnn\n"
        "ep_broken = no_such_module_xyz:make\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert {"ep_demo", "ep_broken"} <= set(registered_architectures())
    assert get_architecture("ep_demo") is make_demo_cnn
    with pytest.raises(ArchitectureError, match="entry point 'no_such_module_xyz:make'"):
        get_architecture("ep_broken", source="card.json")


def test_card_names_a_non_string(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "demo_cnn")
    data = json.loads((folder / "config.json").read_text())
    data["napari_xai"]["architecture"] = ["os", "abort"]
    (folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"config\.json: architecture must be a string"):
        load_model(folder, device="cpu")


def test_config_and_embedded_card_disagreeing_warns(tmp_path: Path) -> None:
    """Class order differs between config.json and the embedded card: say so, name both."""
    from napari_xai.core.models.wsinfer import (
        CONFIG_NAME,
        load_wsinfer_folder,
        save_wsinfer_model,
    )

    card = ModelCard(class_names=("background", "normal", "tumour"), tile_size=64, mpp=1.0)
    folder = save_wsinfer_model(make_demo_cnn(3).eval(), card, tmp_path / "zoo", check=False)
    config = json.loads((folder / CONFIG_NAME).read_text())
    with pytest.warns(UserWarning) as none:
        load_model(folder)
        load_wsinfer_folder(folder)
        import warnings

        warnings.warn("sentinel", UserWarning, stacklevel=1)
    ours = [str(w.message) for w in none if w.category is UserWarning]
    assert ours == ["sentinel"]  # agreeing cards: quiet
    config["class_names"] = ["tumour", "normal", "background"]
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="disagree") as caught:
        loaded = load_model(folder)
    message = str(caught[0].message)
    assert str(folder / CONFIG_NAME) in message and "class_names" in message
    assert "using the embedded card" in message
    assert loaded.card.class_names == ("background", "normal", "tumour")
    with pytest.warns(UserWarning, match="disagree.*class_names.*using config.json"):
        _module, used = load_wsinfer_folder(folder)
    assert used.class_names == ("tumour", "normal", "background")
