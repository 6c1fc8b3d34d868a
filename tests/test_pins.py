"""environment.yml mirrors pyproject.toml's pins exactly."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = project["optional-dependencies"]
    reqs = project["dependencies"] + [r for name, g in groups.items() if name != "pcx" for r in g]
    return dict(r.split("==") for r in reqs)  # the pcx extra lives in its own venv, not in environment.yml


def environment_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return dict(r.split("==") for r in pip if "==" in r)


def test_every_dependency_is_pinned_exactly():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [r for g in project["optional-dependencies"].values() for r in g]
    assert all(r.count("==") == 1 for r in reqs), reqs


def test_environment_yml_mirrors_pyproject():
    assert environment_pins() == pyproject_pins()


def test_known_fragile_pins():
    pins = pyproject_pins()
    assert pins["jupyter-book"] == "1.0.4.post1" and pins["torch"] == "2.13.0"
    assert pins["sphinx"].startswith("7.") and pins["myst-parser"].startswith("3.")


def test_one_version_everywhere():
    import pcbp

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())["version"]
    assert pcbp.__version__ == version == cff
    assert f"## {version}" in (ROOT / "CHANGELOG.md").read_text()
