"""The Dockerfiles' own steps, replayed on this machine's Python, and the result started.

No container engine runs here, so this is not a container build. It is the next best thing:
every instruction of the Dockerfile is carried out for real, in order, with the build context
filtered by .dockerignore. The absolute paths the Dockerfile uses (/app, /protos, /gen) are
mapped to one folder, the same for every stage as they are in an image; when a stage ends its
files are set aside (for COPY --from) and the next stage starts empty. A fresh virtual
environment stands in for each base image's Python. pip, uv and protoc really run, against the
real lock file. Then the final stage's ENTRYPOINT is started and must serve (the server) or run
against that server (the client).

What it catches: a file the build needs but the context or .dockerignore leaves out, a wrong
COPY path, a uv flag or lock mismatch, generated code the runtime cannot import, an editable
install that does not resolve from the final stage. What it cannot: the base image itself, and
ownership (--chown, USER), which need a real engine.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import venv
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

#: The first test builds both images (pip, uv sync, protoc): on a busy 2-core machine that took
#: 178 s, over the suite's 120 s default, which would fail a build that works.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[1]
MAPPED = ("app", "protos", "gen")
# An absolute path the Dockerfile uses, alone or right after a flag such as -I.
ABSOLUTE = re.compile(r"(?:(?<=-I)|(?<![\w./-]))/(" + "|".join(MAPPED) + r")\b")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def ignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [p.strip() for p in lines if p.strip() and not p.startswith("#")]


def pattern_matcher(pattern: str) -> Callable[[str], bool]:
    """A cleaned .dockerignore pattern as Docker compiles it (moby/patternmatcher
    ``Pattern.compile`` and ``Pattern.match``): with no wildcard, the path itself; ``foo**``,
    any path starting ``foo``; ``**foo``, any path ending ``foo`` (``**/foo`` also ``foo``);
    otherwise a regexp in which ``*`` and ``?`` stay within one folder, ``**`` spans any number
    of them (``**/`` too, zero included), ``[...]`` is a class and ``\\`` escapes."""
    out, kind, i = "^", "exact", 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            first = i == 0
            i += 3 if pattern.startswith("**/", i) else 2
            if i >= len(pattern):
                if kind == "exact":
                    kind = "prefix"
                else:
                    out, kind = out + ".*", "regexp"
            else:
                out, kind = out + "(.*/)?", "regexp"
            if first:
                kind = "suffix"
            continue
        if ch == "*":
            out, kind = out + "[^/]*", "regexp"
        elif ch == "?":
            out, kind = out + "[^/]", "regexp"
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out, kind = out + re.escape(pattern[i]), "regexp"
        elif ch in "[]":
            out, kind = out + ch, "regexp"
        else:
            out += re.escape(ch)
        i += 1
    if kind == "exact":
        return lambda path: path == pattern
    if kind == "prefix":
        return lambda path: path.startswith(pattern[:-2])
    if kind == "suffix":
        suffix = pattern[2:]
        return lambda path: path.endswith(suffix) or (suffix[:1] == "/" and path == suffix[1:])
    regex = re.compile(out + "$")
    return lambda path: regex.match(path) is not None


def ignored(relative: str, patterns: list[str]) -> bool:
    """Docker's rule (moby/patternmatcher ``MatchesOrParentMatches``, which BuildKit applies to
    the context): patterns are cleaned paths, read in order; a path is out when it or one of
    its parent folders matches the last pattern that decides it, and a ``!`` pattern brings a
    matched path back in."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    matched = False
    for raw in patterns:
        exclusion = raw.startswith("!")
        pattern = posixpath.normpath(raw[1:] if exclusion else raw).lstrip("/")
        if exclusion != matched:
            continue
        match = pattern_matcher(pattern)
        if any(match(c) for c in candidates):
            matched = not exclusion
    return matched


def build_context(target: Path) -> Path:
    """A copy of the repository as Docker would send it: git's files minus .dockerignore."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    patterns = ignore_patterns()
    for relative in listed:
        source = ROOT / relative
        if source.is_file() and not ignored(relative, patterns):
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / relative)
    return target


@dataclass
class Stage:
    name: str
    root: Path  # the stage's own folder: its Python, and its files once it has ended
    fs: Path  # where its image paths live: the shared folder while it runs
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    entrypoint: list[str] = field(default_factory=list)

    def host(self, path: str) -> Path:
        """Where an absolute path of the image lives on this machine."""
        return self.fs / path.lstrip("/")

    def translate(self, text: str) -> str:
        return ABSOLUTE.sub(lambda m: str(self.fs / m.group(1)), text)

    def end(self) -> None:
        """Set this stage's files aside; the shared folder is emptied for the next stage."""
        saved = self.root / "fs"
        saved.mkdir()
        for name in MAPPED:
            if (self.fs / name).exists():
                (self.fs / name).rename(saved / name)
        self.fs = saved

    def process_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}
        env["PATH"] = f"{self.root / 'python' / 'bin'}:{env['PATH']}"
        env["UV_PYTHON"] = str(self.root / "python" / "bin" / "python")
        for key, value in self.env.items():
            env[key] = self.translate(value).replace("$PATH", env["PATH"])
        return env


class Replay:
    def __init__(self, dockerfile: Path, context: Path, sandbox: Path) -> None:
        self.dockerfile = dockerfile
        self.context = context
        self.sandbox = sandbox
        (sandbox / "fs").mkdir(parents=True)
        self.args: dict[str, str] = {}
        self.stages: dict[str, Stage] = {}
        self.stage: Stage | None = None

    def run(self) -> Stage:
        for keyword, rest in instructions(self.dockerfile.read_text()):
            getattr(self, f"do_{keyword.lower()}")(rest)
        assert self.stage is not None
        return self.stage

    def _expand(self, text: str) -> str:
        return re.sub(r"\$\{(\w+)\}", lambda m: self.args[m.group(1)], text)

    def do_arg(self, rest: str) -> None:
        name, _, value = rest.partition("=")
        self.args[name] = value

    def do_from(self, rest: str) -> None:
        _image, _, name = self._expand(rest).partition(" AS ")
        if self.stage is not None:
            self.stage.end()
        root = self.sandbox / f"stage-{len(self.stages)}-{name}"
        root.mkdir()
        # The base image's Python: this machine's, in a fresh environment with pip.
        venv.EnvBuilder(with_pip=True, symlinks=True).create(root / "python")
        self.stage = Stage(name, root, fs=self.sandbox / "fs")
        self.stages[name] = self.stage

    def do_env(self, rest: str) -> None:
        assert self.stage is not None
        for pair in shlex.split(rest):
            key, _, value = pair.partition("=")
            self.stage.env[key] = value

    def do_workdir(self, rest: str) -> None:
        assert self.stage is not None
        self.stage.workdir = rest
        self.stage.host(rest).mkdir(parents=True, exist_ok=True)

    def do_copy(self, rest: str) -> None:
        assert self.stage is not None
        words = shlex.split(rest)
        options = [w for w in words if w.startswith("--")]
        *sources, dest = [w for w in words if not w.startswith("--")]
        origin = next((o.split("=", 1)[1] for o in options if o.startswith("--from=")), None)
        if dest.startswith("/"):
            target = self.stage.host(dest)
        else:
            target = self.stage.host(self.stage.workdir) / dest
        for source in sources:
            base = self.context if origin is None else self.stages[origin].fs
            path = base / source.lstrip("/")
            assert path.exists(), f"COPY {source}: not in the build context (.dockerignore?)"
            if path.is_dir():
                shutil.copytree(path, target, symlinks=True, dirs_exist_ok=True)
            else:
                destination = target / path.name if dest.endswith("/") else target
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, destination)

    def do_run(self, rest: str) -> None:
        assert self.stage is not None
        command = self.stage.translate(rest)
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command],
            cwd=self.stage.host(self.stage.workdir),
            env=self.stage.process_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, f"RUN {rest}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"

    def do_entrypoint(self, rest: str) -> None:
        assert self.stage is not None
        self.stage.entrypoint = json.loads(rest)

    def do_user(self, rest: str) -> None:
        """Ownership needs a real engine; test_containers checks the value."""

    def do_expose(self, rest: str) -> None:
        """Documentation only."""


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to know the build context")
    sandbox = tmp_path_factory.mktemp("docker")
    context = build_context(sandbox / "context")
    replays = {
        service: Replay(ROOT / "services" / service / "Dockerfile", context, sandbox / service)
        for service in ("server", "client")
    }
    # Side by side, as an engine builds two images: each step mostly waits on pip, uv or
    # protoc in a process of its own, and each image has its own sandbox.
    with ThreadPoolExecutor(max_workers=len(replays)) as pool:
        futures = {service: pool.submit(replay.run) for service, replay in replays.items()}
        return {service: future.result() for service, future in futures.items()}


def start(stage: Stage, **env: str) -> subprocess.Popen:
    process_env = {**stage.process_env(), "LOG_FORMAT": "json", **env}
    return subprocess.Popen(
        stage.entrypoint,
        cwd=stage.host(stage.workdir),
        env=process_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_context_leaves_out_local_state_and_tests(images, tmp_path):
    context = build_context(tmp_path / "ctx")
    assert (context / "uv.lock").exists()
    assert (context / "protos/hellolb/v1/hello.proto").exists()
    assert not (context / "services/server/tests").exists()
    assert not list(context.rglob("*_pb2.py"))


def test_the_server_image_runs_its_entrypoint_and_serves(images, port):
    stage = images["server"]
    app = stage.host("/app")
    assert (app / "libs/hellolb/src/hellolb/v1/hello_pb2.pyi").exists()
    assert not (app / "services/client").joinpath("src").exists()
    server = start(stage, BIND_ADDRESS="127.0.0.1", PORT=str(port), SERVER_ID="image")
    try:
        first = json.loads(server.stdout.readline())
        assert first["event"] == "server.config"
        started = json.loads(server.stdout.readline())
        assert started["event"] == "server.started"
        client = start(
            images["client"],
            SERVER_ADDRESS=f"127.0.0.1:{port}",
            MAX_ROUNDS="2",
            CLIENT_ID="image-client",
        )
        out, err = client.communicate(timeout=60)
        assert client.returncode == 0, err
        answers = [json.loads(line) for line in out.splitlines()]
        responses = [a for a in answers if a["event"] == "client.response"]
        assert len(responses) == 20
        assert {r["server_id"] for r in responses} == {"image"}
    finally:
        server.terminate()
        server.wait(15)
    assert server.returncode == 0


def test_the_client_image_refuses_a_bad_setting_with_its_one_line(images):
    client = start(images["client"], CONCURRENCY="lots")
    out, _ = client.communicate(timeout=60)
    assert client.returncode == 2
    (line,) = [json.loads(x) for x in out.splitlines()]
    assert line["variable"] == "CONCURRENCY"


def test_the_images_are_editable_so_live_sync_takes_effect(images, port):
    """A file copied over the image's source (what Skaffold and Tilt do) is the code that runs."""
    stage = images["client"]
    target = stage.host("/app/services/client/src/hello_client/target.py")
    target.write_text(target.read_text() + '\nTARGET_HELP = "synced"\n')
    client = start(stage, SERVER_ADDRESS="not a target")
    out, _ = client.communicate(timeout=60)
    assert client.returncode == 2
    assert json.loads(out.splitlines()[-1])["expected"] == "synced"


def test_the_server_image_does_not_carry_the_client(images):
    with pytest.raises(subprocess.CalledProcessError):
        subprocess.run(
            [str(images["server"].host("/app/.venv/bin/python")), "-c", "import hello_client"],
            check=True,
            capture_output=True,
        )
    assert sys.executable  # the replay used this interpreter's version for the base image


@pytest.mark.parametrize(
    ("path", "patterns", "out"),
    [
        ("README.md", ["*.md"], True),
        # `*` stays within one folder: a README deeper down is sent.
        ("services/server/README.md", ["*.md"], False),
        ("tests", ["**/tests"], True),
        ("services/server/tests/test_x.py", ["**/tests"], True),
        ("lab/src/x.pyc", ["**/*.py[cod]"], True),
        ("lab/src/x.py", ["**/*.py[cod]"], False),
        ("k8s/kind/cluster.yaml", ["k8s"], True),
        ("k8sx", ["k8s"], False),
        ("notes.md", ["*.md", "!notes.md"], False),
        ("docs/a.md", ["docs", "!docs/a.md"], False),
    ],
)
def test_the_context_filter_follows_dockers_pattern_rules(path, patterns, out):
    assert ignored(path, patterns) is out
