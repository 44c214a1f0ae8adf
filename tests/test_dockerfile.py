"""The worker image, checked statically: pinned base, pinned dependencies installed only from prepared
wheels, without dev tools, non-root, and every deployment entrypoint inside the image.
tests/test_image.py builds it and runs a flow in it."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = (REPO / "docker" / "Dockerfile").read_text()
INSTRUCTIONS = [
    line.strip() for line in re.sub(r"\\\n", " ", DOCKERFILE).splitlines() if line.strip() and line[0] != "#"
]
PINS = {
    canonicalize_name(Requirement(line).name): Requirement(line)
    for line in (REPO / "docker" / "requirements.txt").read_text().splitlines()
    if line and not line.startswith("#")
}


def instructions(keyword: str) -> list[str]:
    return [i.split(None, 1)[1] for i in INSTRUCTIONS if i.split(None, 1)[0].upper() == keyword]


def copied_sources() -> list[str]:
    return [src for args in instructions("COPY") for src in args.split()[:-1] if not src.startswith("--")]


def test_base_image_is_the_official_prefect_image_pinned_to_the_tested_versions() -> None:
    (base,) = instructions("FROM")
    assert base == "${BASE_IMAGE}"  # overridable (a stand-in where the registry is unreachable)
    defaults = dict(arg.split("=", 1) for arg in instructions("ARG") if "=" in arg)
    match = re.fullmatch(r"prefecthq/prefect:(\d+\.\d+\.\d+)-python(\d+\.\d+)", defaults["BASE_IMAGE"])
    assert match, f"base image must default to prefecthq/prefect:<x.y.z>-python<x.y>, got {defaults!r}"
    assert match.group(1) == str(PINS["prefect"].specifier).removeprefix("==")  # image = pinned Prefect
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert Requirement(f"python{project['requires-python']}").specifier.contains(match.group(2))


def test_runs_as_a_non_root_user() -> None:
    users = instructions("USER")
    assert users and users[-1] not in {"root", "0", "0:0"}
    last_user = max(i for i, line in enumerate(INSTRUCTIONS) if line.startswith("USER"))
    last_run = max(i for i, line in enumerate(INSTRUCTIONS) if line.startswith("RUN"))
    assert last_user > last_run  # nothing runs as root after the switch, and the container does not


def test_project_installed_without_dev_dependencies_and_without_caches() -> None:
    runs = instructions("RUN")
    installs = [cmd for run in runs for cmd in run.split("&&") if "pip install" in cmd]
    assert installs and all("--no-cache-dir" in cmd for cmd in installs)
    # Only from the wheels prepared outside the build (docker/build_image.py): no index, no network.
    assert all("--no-index --find-links /tmp/wheels" in cmd for cmd in installs)
    assert "docker/wheels /tmp/wheels" in instructions("COPY")
    assert any("rm -rf /tmp/wheels" in run for run in runs)  # not left in the running image
    assert any(re.search(r"pip install --no-cache-dir .*-r docker/requirements.txt", c) for c in installs)
    assert any(re.search(r"pip install --no-cache-dir .*--no-deps \.(\s|$)", c) for c in installs)
    assert not any("[dev" in cmd or "[bench" in cmd or "-e " in cmd for cmd in installs)


def test_every_dependency_is_pinned_and_no_dev_tool_is_in_the_image() -> None:
    assert all(str(req.specifier).startswith("==") and len(req.specifier) == 1 for req in PINS.values())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"]:
        req = Requirement(dep)
        name = canonicalize_name(req.name)
        assert name in PINS, f"{req.name} is a dependency but not pinned in docker/requirements.txt"
        assert req.specifier.contains(next(iter(PINS[name].specifier)).version), f"{name} pin out of range"
    dev = {canonicalize_name(Requirement(d).name) for d in project["optional-dependencies"]["dev"]}
    assert not dev & set(PINS)


def test_every_copied_path_exists_and_passes_the_dockerignore() -> None:
    rules = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def included(path: str) -> bool:
        keep = True
        for rule in rules:
            negate, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
                keep = negate
        return keep

    for src in copied_sources():
        # docker/wheels is prepared before each build (docker/build_image.py, prefect.yaml's build step).
        assert src == "docker/wheels" or (REPO / src).exists(), f"COPY {src}: no such file"
        assert included(src), f"COPY {src}: excluded by .dockerignore"
    assert included("docker/wheels/polars-1.0-cp39-abi3-manylinux_2_17_x86_64.whl")
    for heavy in (".venv", ".git", "tests", "bench", ".ventureos", "flows/__pycache__/x.pyc"):
        assert not included(heavy), f".dockerignore lets {heavy} into the build context"


def test_every_deployment_entrypoint_is_in_the_image_where_the_pull_step_looks() -> None:
    (workdir,) = instructions("WORKDIR")
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    pull = config["pull"][0]["prefect.deployments.steps.set_working_directory"]["directory"]
    assert pull == workdir
    copied = copied_sources()
    for deployment in config["deployments"]:
        module = deployment["entrypoint"].split(":")[0]
        assert module.split("/")[0] in copied, f"{module} is not copied into the image"
    assert "tasks" in copied and "normalizers" in copied and "ventureos" in copied


def test_build_step_uses_this_dockerfile() -> None:
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    steps = {name: args for step in config["build"] for name, args in step.items()}
    build = steps["prefect_docker.deployments.steps.build_docker_image"]
    # The wheels the Dockerfile installs from are prepared first, by the same script as `make image`.
    assert (
        "docker/build_image.py --wheels-only" in steps["prefect.deployments.steps.run_shell_script"]["script"]
    )
    assert next(iter(config["build"][0])) == "prefect.deployments.steps.run_shell_script"
    assert build["dockerfile"] == "docker/Dockerfile"
    assert build["image_name"].endswith("/ventureos-worker")
    push = config["push"][-1]["prefect_docker.deployments.steps.push_docker_image"]
    assert push["image_name"] == "{{ build-image.image_name }}"
