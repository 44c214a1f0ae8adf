"""Print docker/requirements.txt: the runtime dependency closure of the project, pinned to the versions
installed in this environment (the ones the test suite runs), without dev or bench extras.

    .venv/bin/python docker/lock.py > docker/requirements.txt
"""

from __future__ import annotations

import importlib.metadata as metadata
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
HEADER = (
    "# Runtime pins for the worker image: the closure of pyproject's [project.dependencies] (no dev/bench\n"
    "# extras) at the versions the test suite runs. Regenerate: .venv/bin/python docker/lock.py > docker/requirements.txt\n"
)


def runtime_pins() -> dict[str, str]:
    """name -> installed version for every distribution pyproject's dependencies need at run time."""
    pins: dict[str, str] = {}
    direct = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    pending = [(r.name, frozenset(r.extras)) for r in map(Requirement, direct)]
    visited: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        key = (canonicalize_name(name), extras)
        if key in visited:
            continue
        visited.add(key)
        dist = metadata.distribution(name)
        pins[canonicalize_name(name)] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            wanted = extras or frozenset({""})
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in wanted):
                continue
            pending.append((req.name, frozenset(req.extras)))
    return dict(sorted(pins.items()))


def render() -> str:
    return HEADER + "".join(f"{name}=={ver}\n" for name, ver in runtime_pins().items())


if __name__ == "__main__":
    print(render(), end="")
