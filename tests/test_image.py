"""The worker image, built (docker/build_image.py, what `make image` runs) and run: a daily-ingest inside a
container of it, as the image's user 10001, on the image's embedded home.

Needs root (buildah and debootstrap come from apt when missing). The first build takes minutes (stand-in
base, wheels, vfs layers); an image already built from the same inputs (label) is reused as is."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_deployments import REPO, sample_rows

pytestmark = pytest.mark.slow
HOME = "/opt/ventureos/.ventureos"  # the image's WORKDIR/.ventureos: the embedded default home
DAY = "2024-03-05"
TIMEOUT = 1800  # a first build on a loaded 2-core machine


def build_image_module():
    spec = importlib.util.spec_from_file_location("build_image", REPO / "docker" / "build_image.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def image() -> str:
    build_image = build_image_module()
    try:
        return build_image.build()
    except SystemExit as error:  # the builder's own message (e.g. buildah cannot be installed)
        pytest.fail(f"cannot build the worker image: {error}")


def buildah(*args: str, timeout: float = TIMEOUT) -> str:
    done = subprocess.run(
        ["buildah", "--storage-driver", "vfs", *args], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"buildah {' '.join(args)} failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.fixture
def container(image: str) -> Iterator[str]:
    name = buildah("from", "--quiet", image).strip()
    try:
        yield name
    finally:
        subprocess.run(["buildah", "--storage-driver", "vfs", "rm", name], capture_output=True, timeout=120)


def run(container: str, *command: str) -> str:
    """``command`` in the container as the image's user (no --user: the image's USER applies)."""
    return buildah("run", "--isolation", "chroot", container, "--", *command)


def json_out(text: str) -> object:
    return json.loads(text[min(i for i in (text.find("{"), text.find("[")) if i >= 0) :])


def test_image_runs_as_10001_from_the_pull_step_directory(image: str) -> None:
    config = json.loads(buildah("inspect", "--type", "image", image))
    assert config["OCIv1"]["config"]["User"] == "10001"
    assert config["OCIv1"]["config"]["WorkingDir"] == "/opt/ventureos"


def test_daily_ingest_runs_inside_the_image_as_uid_10001(container: str, tmp_path: Path) -> None:
    assert run(container, "id", "-u").strip() == "10001"
    csv = tmp_path / "reports.csv"
    sample_rows(12).write_csv(csv)
    buildah("copy", "--chown", "10001:10001", container, str(csv), "/tmp/reports.csv")
    bronze = f"{HOME}/lake/bronze/daily/osha/severe_injury/{DAY}"
    # uid 10001 creates the lake itself: the home must be writable by it.
    run(container, "sh", "-c", f"mkdir -p {bronze} && cp /tmp/reports.csv {bronze}/")

    # Only the staged dataset: a day without an expected one (OSHA enforcement) would exit 3.
    args = ("--date", DAY, "--agency", "osha", "--dataset", "severe_injury", "--json")
    report = json_out(run(container, "ventureos", "run", "daily-ingest", *args))
    assert report["totals"]["read"] == 12 and report["totals"]["inserted"] == 12, report
    assert report["reconciled"] is True

    sql = "select count(*) as n from silver_violations where is_current"
    assert json_out(run(container, "ventureos", "query", sql, "--json")) == [{"n": 12}]
    owners = run(container, "sh", "-c", f"find {HOME} ! -user 10001 | head -5")
    assert owners.strip() == "", f"files in the home not owned by 10001: {owners}"
