"""The Markdown command scanner the documentation tests rely on (doc_commands.py): it finds
commands in README.md and anywhere under docs/, whatever the sections, and reads shell the way
a shell does."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("doc_commands", ROOT / "tests" / "doc_commands.py")
assert _spec is not None
assert _spec.loader is not None
docs = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = docs
_spec.loader.exec_module(docs)

PAGE = """# Anything

Some text with `kubectl logs not-a-command` inline.

```sh
# a comment: kubectl logs -n x nothing
kubectl logs -f -l app=client -n grpc-lb-x | jq -rR 'fromjson?
  | .event'   # trailing comment
for p in $(kubectl get pods -n grpc-lb-x -l app=proxy -o name); do
  echo "$p $(kubectl logs -n grpc-lb-x "$p" --since=20s | grep -c '"proxy.request"')"; done
comm -23 <(kubectl get pods -o name) <(kubectl --context k logs -l app=client | jq -r .a)
BIND=127.0.0.$((n+1)) make server && kubectl logs deploy/server \\
  -n grpc-lb-x
```

```
loop  calls/s (1.00 = the client's logging)
kubectl logs from program output, not a command
```

```yaml
command: ["kubectl", "logs"]
```
"""


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_readme_and_every_page_under_docs_are_scanned(tmp_path):
    write(tmp_path, "README.md", "```sh\nkubectl logs -l app=a\n```\n")
    write(tmp_path, "docs/scenarios/deep/page.md", "```bash\nkubectl logs -l app=b\n```\n")
    write(tmp_path, "notes/other.md", "```sh\nkubectl logs -l app=c\n```\n")
    found = {c.argv[-1] for c in docs.kubectl_logs(tmp_path)}
    assert found == {"app=a", "app=b"}


def test_logs_commands_are_found_in_pipes_substitutions_and_continued_lines(tmp_path):
    write(tmp_path, "README.md", PAGE)
    found = [(c.line, c.argv) for c in docs.kubectl_logs(tmp_path)]
    assert found == [
        (7, ("kubectl", "logs", "-f", "-l", "app=client", "-n", "grpc-lb-x")),
        (10, ("kubectl", "logs", "-n", "grpc-lb-x", "$p", "--since=20s")),
        (11, ("kubectl", "--context", "k", "logs", "-l", "app=client")),
        (12, ("kubectl", "logs", "deploy/server", "-n", "grpc-lb-x")),
    ]


def test_jq_programs_keep_their_quoted_lines_and_know_they_read_a_pipe(tmp_path):
    write(tmp_path, "README.md", PAGE)
    jqs = docs.jq_commands(tmp_path)
    assert [c.argv for c in jqs] == [
        ("jq", "-rR", "fromjson?\n  | .event"),
        ("jq", "-r", ".a"),
    ]
    assert all(c.piped_in for c in jqs)


def test_a_loop_variable_is_tied_to_the_command_that_lists_its_values(tmp_path):
    write(tmp_path, "README.md", PAGE)
    (command,) = [c for c in docs.kubectl_logs(tmp_path) if "$p" in c.argv]
    assert command.loops["p"] == (
        "kubectl",
        "get",
        "pods",
        "-n",
        "grpc-lb-x",
        "-l",
        "app=proxy",
        "-o",
        "name",
    )
