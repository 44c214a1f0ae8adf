"""Build the worker image (docker/Dockerfile) with buildah: no Docker engine, no network inside the build.

    .venv/bin/python docker/build_image.py [--tag ventureos-worker:dev] [--base IMAGE]

Steps:
1. buildah and debootstrap come from apt when missing (root needed; a clear error otherwise).
2. The pinned dependencies (docker/requirements.txt) plus the build backend are downloaded as wheels
   outside the build, into a cache reused between builds (``$VENTUREOS_WHEEL_CACHE``, default
   /var/tmp/ventureos-wheels), and hard-linked into the build context at docker/wheels/. The build
   installs only from there (``pip install --no-index``): the image gets exactly the pinned files.
3. The base is ``--base`` (default the official ``prefecthq/prefect`` image the Dockerfile names). When
   that cannot be pulled, a stand-in with the same layout is built locally and used instead: Debian
   bookworm (debootstrap, minbase) with Debian's python3.11 as a virtual environment at /usr/local, so
   ``python`` and ``pip`` are on the default PATH as in the official image.

buildah runs with ``--storage-driver vfs`` and ``--isolation chroot``: both work as root without
overlay or user namespaces.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "docker" / "Dockerfile"
REQUIREMENTS = REPO / "docker" / "requirements.txt"
CONTEXT_WHEELS = REPO / "docker" / "wheels"
WHEEL_CACHE = Path(os.environ.get("VENTUREOS_WHEEL_CACHE", "/var/tmp/ventureos-wheels"))
DEFAULT_TAG = "localhost/ventureos-worker:dev"
STANDIN_BASE = "localhost/ventureos-standin-base:bookworm-python3.11"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BUILDAH = ["buildah", "--storage-driver", "vfs"]


def log(message: str) -> None:
    print(f"[image] {message}", flush=True)


def official_base() -> str:
    """The base the Dockerfile names (its ``ARG BASE_IMAGE`` default)."""
    match = re.search(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    if not match:
        raise SystemExit("docker/Dockerfile has no `ARG BASE_IMAGE=<image>` line")
    return match.group(1)


def ensure_tools() -> None:
    """buildah and debootstrap, installed from apt when missing."""
    missing = [tool for tool in ("buildah", "debootstrap") if not shutil.which(tool)]
    if not missing:
        return
    log(f"installing {' '.join(missing)} with apt-get")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "buildah", "debootstrap"], check=True, env=env)
    except (OSError, subprocess.CalledProcessError) as error:
        raise SystemExit(
            f"cannot install {' '.join(missing)} ({error}): run as root on Debian/Ubuntu, or install "
            "buildah and debootstrap yourself"
        ) from error
    still = [tool for tool in missing if not shutil.which(tool)]
    if still:
        raise SystemExit(f"apt-get ran but {' '.join(still)} is still not on PATH")


def earlier_patch_release_needs(pins: list[str]) -> list[str]:
    """What the pinned distributions need only on an earlier 3.11 patch release than this one (e.g.
    redis needs async-timeout below 3.11.3; Debian bookworm's python3.11 is 3.11.2), so the wheel set
    installs on any 3.11 base. docker/lock.py pins the closure for the interpreter it runs on."""
    pinned = {canonicalize_name(Requirement(pin).name) for pin in pins}
    here = {"extra": ""}
    oldest = here | {"python_full_version": "3.11.0", "python_version": "3.11"}
    needs = []
    for name in sorted(pinned):
        for line in metadata.distribution(name).requires or []:
            req = Requirement(line)
            wanted_here = req.marker is None or req.marker.evaluate(here)
            if not wanted_here and req.marker.evaluate(oldest) and canonicalize_name(req.name) not in pinned:
                needs.append(f"{req.name}{req.specifier}")
    return needs


def requirements_with_build_backend() -> list[str]:
    """docker/requirements.txt's pins, what they need on earlier 3.11 patch releases, and the project's
    build requirements (pyproject's [build-system]), so ``pip install --no-index .`` builds the project
    inside the image."""
    pins = [line for line in REQUIREMENTS.read_text().splitlines() if line and not line.startswith("#")]
    build_system = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    return [*pins, *earlier_patch_release_needs(pins), *build_system]


def prepare_wheels() -> Path:
    """Every pinned wheel in the cache (downloaded once per set of pins), hard-linked into docker/wheels."""
    pins = requirements_with_build_backend()
    digest = hashlib.sha256("\n".join(pins).encode()).hexdigest()
    stamp = WHEEL_CACHE / ".complete"
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    if not stamp.exists() or stamp.read_text() != digest:
        log(f"downloading {len(pins)} wheels into {WHEEL_CACHE}")
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as wanted:
            wanted.write("\n".join(pins) + "\n")
            wanted.flush()
            done = subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--quiet", "-r", wanted.name, "-w", str(WHEEL_CACHE)],
                capture_output=True,
                text=True,
            )
        if done.returncode != 0:
            # pip's warnings about this machine's index configuration ("... is ignored") are noise.
            errors = [line for line in done.stderr.splitlines() if "is ignored" not in line]
            raise SystemExit("pip wheel failed:\n" + "\n".join(errors[-30:]))
        stamp.write_text(digest)
    shutil.rmtree(CONTEXT_WHEELS, ignore_errors=True)
    CONTEXT_WHEELS.mkdir()
    for wheel in WHEEL_CACHE.glob("*.whl"):
        try:
            os.link(wheel, CONTEXT_WHEELS / wheel.name)
        except OSError:
            shutil.copy2(wheel, CONTEXT_WHEELS / wheel.name)
    return CONTEXT_WHEELS


def image_exists(name: str) -> bool:
    done = subprocess.run([*BUILDAH, "inspect", "--type", "image", name], capture_output=True)
    return done.returncode == 0


def qualified(name: str) -> str:
    """Docker Hub's short names (``prefecthq/prefect:tag``) spelled out: buildah resolves no short names."""
    first = name.split("/")[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        return name
    return f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"


def pull(name: str) -> bool:
    if image_exists(name):
        return True
    done = subprocess.run([*BUILDAH, "pull", "--quiet", name], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        log(f"cannot pull {name}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else '?'}")
    return done.returncode == 0


def build_standin_base(name: str = STANDIN_BASE) -> str:
    """Debian bookworm + python3.11 (a venv at /usr/local, with pip), committed as ``name``; reused."""
    if image_exists(name):
        return name
    log(f"building the stand-in base {name} (debootstrap bookworm + python3.11)")
    with tempfile.TemporaryDirectory(prefix="ventureos-base-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3.11,python3.11-venv,python3-distutils,ca-certificates",
                "bookworm",
                str(rootfs),
                DEBIAN_MIRROR,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(["chroot", str(rootfs), "python3.11", "-m", "venv", "/usr/local"], check=True)
        shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        shutil.rmtree(rootfs / "var" / "lib" / "apt" / "lists", ignore_errors=True)
        archive = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(archive), "."], check=True)
        container = subprocess.run(
            [*BUILDAH, "from", "scratch"], check=True, capture_output=True, text=True
        ).stdout.strip()
        try:
            subprocess.run([*BUILDAH, "add", container, str(archive), "/"], check=True)
            subprocess.run(
                [
                    *BUILDAH,
                    "config",
                    "--env",
                    "PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "--env",
                    "LANG=C.UTF-8",
                    "--cmd",
                    "python",
                    container,
                ],
                check=True,
            )
            subprocess.run(
                [*BUILDAH, "commit", "--quiet", container, name], check=True, stdout=subprocess.DEVNULL
            )
        finally:
            subprocess.run([*BUILDAH, "rm", container], capture_output=True)
    return name


def resolve_base(base: str | None) -> str:
    """``base`` if given; else the official base when it can be pulled, else the local stand-in."""
    if base:
        return base
    official = qualified(official_base())
    if pull(official):
        return official
    log(f"using the local stand-in base instead of {official}")
    return build_standin_base()


CONTEXT_PATHS = ("pyproject.toml", "README.md", "prefect.yaml", "ventureos", "normalizers", "tasks", "flows")
INPUTS_LABEL = "org.ventureos.build-inputs"


def inputs_digest(base: str) -> str:
    """Digest of everything the image is built from: the base image's id, the Dockerfile, the pins,
    the wheels and the copied sources (without bytecode)."""
    digest = hashlib.sha256()
    base_id = json.loads(subprocess.run([*BUILDAH, "inspect", "--type", "image", base], check=True,
                                        capture_output=True, text=True).stdout)["FromImageID"]  # fmt: skip
    digest.update(f"{base}\0{base_id}\0".encode())
    files = [DOCKERFILE, REQUIREMENTS, *sorted(CONTEXT_WHEELS.glob("*.whl"))]
    for name in CONTEXT_PATHS:
        path = REPO / name
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for path in files:
        if "__pycache__" in path.parts or path.suffix in {".pyc", ".pyo"}:
            continue
        relative = path.relative_to(REPO).as_posix()
        content = path.name.encode() if path.suffix == ".whl" else path.read_bytes()  # wheels: by name
        digest.update(relative.encode() + b"\0" + hashlib.sha256(content).digest())
    return digest.hexdigest()


def built_from(tag: str) -> str | None:
    done = subprocess.run([*BUILDAH, "inspect", "--type", "image", tag], capture_output=True, text=True)
    if done.returncode != 0:
        return None
    labels = json.loads(done.stdout).get("OCIv1", {}).get("config", {}).get("Labels") or {}
    return labels.get(INPUTS_LABEL)


def build(tag: str = DEFAULT_TAG, base: str | None = None) -> str:
    """Build docker/Dockerfile as ``tag`` unless ``tag`` was built from the same inputs; returns the tag."""
    started = time.monotonic()
    ensure_tools()
    base = resolve_base(base)
    prepare_wheels()
    inputs = inputs_digest(base)
    if built_from(tag) == inputs:
        log(f"{tag} is up to date (built from the same base, pins and sources)")
        return tag
    log(f"building {tag} from {base}")
    subprocess.run(
        [
            *BUILDAH,
            "bud",
            "--isolation",
            "chroot",
            "--layers",
            "--quiet",
            "--build-arg",
            f"BASE_IMAGE={base}",
            "--label",
            f"{INPUTS_LABEL}={inputs}",
            "-f",
            str(DOCKERFILE),
            "-t",
            tag,
            str(REPO),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    log(f"built {tag} in {time.monotonic() - started:.0f} s")
    return tag


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", default=DEFAULT_TAG)
    parser.add_argument("--base", default=os.environ.get("BASE_IMAGE") or None, help="base image")
    parser.add_argument(
        "--wheels-only", action="store_true", help="only prepare docker/wheels (for another builder)"
    )
    args = parser.parse_args()
    if args.wheels_only:
        log(f"{len(list(prepare_wheels().glob('*.whl')))} wheels in {CONTEXT_WHEELS}")
        return
    build(args.tag, args.base)


if __name__ == "__main__":
    main()
