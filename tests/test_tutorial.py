"""The tutorial, run as written: from `startproject` to its finished app.

The project is made in a temporary directory with the tutorial's commands and
files (docs/examples/tutorial), then served in a child process, where every
`curl` of docs/tutorial.md is sent as written and its answer compared with the
JSON the tutorial shows after it (tokens and timestamps aside). The `shell`
script that gives bob his permission is the tutorial's, run where it stands.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from crudkit.cli import main
from tests.cli_support import ADMIN, ROOT, RUN_COMMANDS, TempProject, fresh_database, manage

TUTORIAL = (ROOT / "docs" / "tutorial.md").read_text()
FIRST = ROOT / "docs" / "examples" / "notes"  # steps 3 and 4
FINAL = ROOT / "docs" / "examples" / "tutorial"  # step 10
BOB = ("bob", "pale-heron-meadow")
TOKENS = {"admin": "TOKEN", "bob": "BOB"}
"""The shell variable the tutorial keeps each user's access token in."""
VOLATILE = {"access_token", "refresh_token", "created_at"}
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)

# In the child, after the batch: serve the project and take the tutorial's steps,
# requests and commands, in order; then visit the admin as a browser would.
SERVE = (
    RUN_COMMANDS
    + """
import asyncio, re
import httpx
from crudkit.app import create_app
from crudkit.conf import load_settings

steps, tokens = json.loads(sys.argv[2])
ORIGIN = {"Origin": "http://testserver"}

async def admin_login(client, username, password):
    page = await client.get("/admin/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    form = {"username": username, "password": password, "csrf_token": csrf}
    return (await client.post("/admin/login", data=form, headers=ORIGIN)).status_code

async def serve():
    app = create_app(load_settings("settings"))
    answers, admin, variables = [], {}, {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for kind, step in steps:
                if kind == "command":
                    # In a thread: the command runs its own event loop.
                    args = ["--settings", "settings", *step]
                    result = await asyncio.to_thread(CliRunner().invoke, main, args)
                    answers.append([result.exit_code, result.output])
                    continue
                method, url, headers, body = step
                for name, value in variables.items():
                    headers = {k: v.replace("$" + name, value) for k, v in headers.items()}
                response = await client.request(method, url, headers=headers, content=body)
                answers.append([response.status_code, response.json()])
                if url.endswith("/auth/token") and response.status_code == 200:
                    user = dict(pair.split("=", 1) for pair in body.split("&"))["username"]
                    variables[tokens[user]] = response.json()["access_token"]
        for user, password in [("admin", sys.argv[3]), ("bob", sys.argv[4])]:
            async with httpx.AsyncClient(
                transport=transport, base_url="http://testserver"
            ) as browser:
                login = await admin_login(browser, user, password)
                index = (await browser.get("/admin/")).text
                notes = await browser.get("/admin/note/list")
                admin[user] = {
                    "login": login,
                    "notes": notes.status_code,
                    "links": sorted(set(re.findall(r'/admin/(\\w+)/list"', index))),
                    "pin": "/admin/note/action/pin" in notes.text,
                }
    return {"answers": answers, "admin": admin}

print(json.dumps([results, asyncio.run(serve())]))
"""
)


def blocks() -> list[tuple[str, str]]:
    """The tutorial's fenced blocks in order: (language, text)."""
    return BLOCK.findall(TUTORIAL)


def request_of(command: str) -> tuple[str, str, dict[str, str], str]:
    """The request a `curl` line sends: method, path, headers, body."""
    words = shlex.split(command.split("#")[0])
    assert words[0] == "curl", command
    method, url, headers, data = "", "", {}, []
    args = iter(words[1:])
    for word in args:
        if word == "-X":
            method = next(args)
        elif word == "-H":
            name, value = next(args).split(": ", 1)
            headers[name] = value
        elif word == "-d":
            data.append(next(args))
        elif word == "-s":
            continue
        else:
            assert word.startswith("http://127.0.0.1:8000/"), word
            url = word.removeprefix("http://127.0.0.1:8000")
    if data:
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    return method or ("POST" if data else "GET"), url, headers, "&".join(data)


def tutorial_steps() -> tuple[list[tuple[str, Any]], list[Any]]:
    """What the tutorial does once the server runs, and the answers it shows."""
    steps: list[tuple[str, Any]] = []
    expected: list[Any] = []
    found = blocks()
    for number, (language, text) in enumerate(found):
        if language != "sh":
            continue
        text = text.replace("\\\n", " ")
        if text.startswith("python manage.py shell -c '"):
            source = text.removeprefix("python manage.py shell -c '").removesuffix("'\n")
            steps.append(("command", ["shell", "-c", source]))
            expected.append("")  # it prints nothing
            continue
        curls = [line for line in text.splitlines() if line.startswith("curl ")]
        for command in curls:
            steps.append(("request", request_of(command)))
        if curls:  # the answer shown is the last request's
            expected += [None] * (len(curls) - 1)
            language, answer = found[number + 1]
            assert language == "json", f"no answer after {curls[-1]!r}"
            expected.append(json.loads(answer))
    return steps, expected


def steady(value: Any) -> Any:
    """`value` without what changes from run to run: tokens, timestamps."""
    if isinstance(value, dict):
        return {k: "..." if k in VOLATILE else steady(v) for k, v in value.items()}
    if isinstance(value, list):
        return [steady(item) for item in value]
    return value


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={"CRUDKIT_SETTINGS_MODULE": ""})
    return result.exit_code, result.output


@pytest.fixture(autouse=True)
def _forget_scaffolded_modules() -> Iterator[None]:
    yield
    for name in [n for n in sys.modules if n.split(".")[0] == "apps"]:
        del sys.modules[name]


def test_the_tutorial_runs_as_written(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1-2. A project and an app, listed in installed_apps as the tutorial shows.
    monkeypatch.chdir(tmp_path)
    assert cli("startproject", "mysite")[0] == 0
    root = tmp_path / "mysite"
    monkeypatch.chdir(root)
    assert cli("startapp", "notes")[0] == 0
    settings = root / "settings.py"
    listed = '        "crudkit.contrib.admin",\n'
    assert '    "crudkit.contrib.admin",\n    "apps.notes",\n' in TUTORIAL
    settings.write_text(settings.read_text().replace(listed, listed + '        "apps.notes",\n'))
    # 3-4. The model, and the resource as first registered.
    app = root / "apps" / "notes"
    shutil.copy(FINAL / "models.py", app / "models.py")
    shutil.copy(FIRST / "resources.py", app / "resources.py")

    with fresh_database(tmp_path, backend) as url:
        project = TempProject(root, url)
        # 5. Migrations, and the users of steps 1 and 8 (passwords from the environment).
        (make, migrate, superuser), _ = project.run(
            ["makemigrations", "notes"],
            ["migrate"],
            ["createsuperuser", "--noinput", "--username", ADMIN[0]],
        )
        # 10. The resource with its action, then the server: steps 7 to 10.
        shutil.copy(FINAL / "resources.py", app / "resources.py")
        steps, expected = tutorial_steps()
        createuser_bob = ["createuser", "bob", "--email", "bob@example.com", "--staff"]
        assert "python manage.py " + " ".join(createuser_bob) in TUTORIAL
        batch = [["--settings", "settings", *createuser_bob, "--noinput"]]
        result = manage(
            [json.dumps(batch), json.dumps([steps, TOKENS]), ADMIN[1], BOB[1]],
            cwd=root,
            env=project.environment(password=BOB[1]),
            script=("-c", SERVE),
        )
    assert result.returncode == 0, result.stderr
    [[createuser], served] = json.loads(result.stdout)

    assert make[:2] == (
        0,
        "Migrations for 'notes':\n  apps/notes/migrations/0001_initial.py\n"
        "    + Create table notes_note\n",
    )
    assert "  Applying notes.0001_initial... OK\n" in migrate[1]
    assert superuser[:2] == (0, "Superuser 'admin' created.\n")
    assert createuser[:2] == [0, "User 'bob' created.\n"], createuser[2]

    answers = served["answers"]
    statuses = [status for status, _ in answers]
    # token, create, list; bob: token, list, 404; grant; list, 403; pin, 403
    assert statuses == [200, 201, 200, 200, 200, 404, 0, 200, 403, 200, 403], answers
    for shown, (_, answer) in zip(expected, answers, strict=True):
        if shown is not None:
            assert steady(answer) == steady(shown)

    admin, bob = served["admin"]["admin"], served["admin"]["bob"]
    assert (admin["login"], bob["login"]) == (302, 302)
    assert (admin["notes"], bob["notes"]) == (200, 200)
    assert {"note", "user", "group", "permission"} <= set(admin["links"])
    assert bob["links"] == ["note"]  # what bob's permissions allow
    assert admin["pin"]  # admin=True: an action of the notes list
