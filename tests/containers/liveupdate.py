"""The live update as Skaffold and Tilt carry it out, from their own configuration files.

Which files go where is read from skaffold.yaml (``sync.manual`` and ``sync.hooks``) and from
the Tiltfile (``live_update``: ``fall_back_on``, ``sync``, ``run``), evaluated by starlark-go
with the stand-ins of tests/test_tiltfile.py. How they are copied follows each tool's source:

- Skaffold (GoogleContainerTools/skaffold, pkg/skaffold/sync/sync.go): a changed file is
  matched against each rule's ``src`` glob (doublestar, relative to the artifact's context);
  its destination is ``dest`` (relative to the image's WORKDIR unless absolute) joined with
  the path minus ``strip``. One file that no rule matches means a rebuild instead. The files
  go through ``kubectl exec -i POD -c CONTAINER -- tar xmf - -C / --no-same-owner``, as the
  container's own user; then the ``hooks.after`` container commands run in the container.
- Tilt (tilt-dev/tilt, internal/containerupdate/exec_updater.go and tar.go; the Tiltfile API
  reference for ``live_update``): a changed file under a ``fall_back_on`` path, or under no
  ``sync`` path, means a full rebuild; otherwise it goes to the sync's remote path plus its
  path below the local one, through ``tar -C / -x -f -`` in the container; then each ``run``
  command runs as ``sh -c CMD``.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]

SKAFFOLD_TAR = ("tar", "xmf", "-", "-C", "/", "--no-same-owner")
TILT_TAR = ("tar", "-C", "/", "-x", "-f", "-")


@dataclass(frozen=True)
class Update:
    """What a tool does for a set of changed files: copy them (local path to container path)
    and run commands, or rebuild the image."""

    tool: str
    copies: Mapping[str, str]
    commands: tuple[tuple[str, ...], ...]
    tar_argv: tuple[str, ...]
    rebuild: bool


def doublestar(pattern: str) -> re.Pattern[str]:
    """A doublestar glob (``**`` any number of folders, ``*`` and ``?`` within one)."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def skaffold_artifact(image: str) -> dict[str, Any]:
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    (artifact,) = [a for a in config["build"]["artifacts"] if a["image"] == image]
    return artifact


def skaffold_update(image: str, changed: Iterable[str], workdir: str) -> Update:
    artifact = skaffold_artifact(image)
    sync = artifact.get("sync") or {}
    copies: dict[str, str] = {}
    rebuild = False
    for relative in changed:
        destinations = []
        for rule in sync.get("manual") or []:
            if doublestar(rule["src"]).match(relative):
                base = "" if PurePosixPath(rule["dest"]).is_absolute() else workdir
                sub = relative.removeprefix(rule.get("strip", ""))
                destinations.append(str(PurePosixPath(base, rule["dest"], sub)))
        if not destinations:
            rebuild = True
        for destination in destinations:
            copies[relative] = destination
    hooks = (sync.get("hooks") or {}).get("after") or []
    commands = tuple(tuple(h["container"]["command"]) for h in hooks if "container" in h)
    return Update("skaffold", {} if rebuild else copies, commands, SKAFFOLD_TAR, rebuild)


def tilt_update(build: Mapping[str, Any], changed: Iterable[str]) -> Update:
    """``build``: the Tiltfile's docker_build call, as the stand-ins of test_tiltfile.py record
    it."""
    steps = build["live_update"]
    fall_back = [f for s in steps if s["step"] == "fall_back_on" for f in s["files"]]
    syncs = [(s["local_path"], s["remote_path"]) for s in steps if s["step"] == "sync"]
    commands = tuple(("sh", "-c", s["cmd"]) for s in steps if s["step"] == "run")
    copies: dict[str, str] = {}
    rebuild = False
    for relative in changed:
        path = PurePosixPath(relative)
        if any(path == PurePosixPath(f) or PurePosixPath(f) in path.parents for f in fall_back):
            rebuild = True
            continue
        matched = [
            (local, remote)
            for local, remote in syncs
            if PurePosixPath(local) in path.parents or path == PurePosixPath(local)
        ]
        if not matched:
            rebuild = True
            continue
        local, remote = matched[0]
        copies[relative] = str(PurePosixPath(remote, path.relative_to(local)))
    return Update("tilt", {} if rebuild else copies, commands, TILT_TAR, rebuild)


def tar_of(copies: Mapping[str, str], source: Path) -> bytes:
    """A tar of the local files at their container paths, relative to ``/``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for relative, destination in copies.items():
            archive.add(source / relative, arcname=destination.lstrip("/"), recursive=False)
    return buffer.getvalue()
