"""The container's invariants, without a docker daemon: the Dockerfile's user, port, health
check and command, the compose file's keys and binding, and that the health check really
passes against `aiecs-llm serve`, which binds loopback unless told otherwise."""

import json
import re
import socket
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICE = COMPOSE["services"]["llm-service"]


def instructions(name: str) -> list[str]:
    """The arguments of each `name` instruction of the final stage, continuations joined."""
    final_stage = DOCKERFILE[DOCKERFILE.rindex("\nFROM ") :]
    joined = re.sub(r"\\\n\s*", " ", final_stage)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(f"{name} ")]


def test_the_image_is_slim_and_runs_as_a_user_without_privileges():
    bases = re.findall(r"^FROM (\S+)", DOCKERFILE, re.MULTILINE)
    assert set(bases) == {"python:3.11-slim"}
    assert "--no-cache-dir" in " ".join(instructions("RUN"))
    (user,) = instructions("USER")
    assert user not in {"root", "0"}
    assert DOCKERFILE.index("\nUSER ") < DOCKERFILE.index("\nCMD ")


def test_port_health_check_and_command():
    assert instructions("EXPOSE") == ["8000"]
    (healthcheck,) = instructions("HEALTHCHECK")
    assert "http://127.0.0.1:8000/healthz" in healthcheck
    (command,) = instructions("CMD")
    assert json.loads(command) == ["aiecs-llm", "serve", "--host", "0.0.0.0", "--port", "8000"]


def test_compose_takes_keys_from_the_environment_and_publishes_on_loopback():
    passed_through = {entry for entry in SERVICE["environment"] if "=" not in entry}
    assert {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_AI_API_KEY"} <= passed_through
    assert not any("KEY=" in entry for entry in SERVICE["environment"])
    assert SERVICE["ports"] == ["127.0.0.1:8000:8000"]
    assert "/healthz" in " ".join(SERVICE["healthcheck"]["test"])
    assert SERVICE["build"] == "."


def test_the_build_context_has_what_the_wheel_needs():
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = " ".join(re.findall(r"^COPY (?!--from)(.+)$", DOCKERFILE, re.MULTILINE)).split()
    for needed in ("pyproject.toml", "README.md", "aiecs_llm", "cassettes"):
        assert needed in allowed  # the wheel has README.md as its readme, cassettes inside
        assert needed in copied


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"nothing listened on 127.0.0.1:{port}")


def test_serve_binds_loopback_by_default_and_the_health_check_passes():
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "aiecs_llm", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(port, time.monotonic() + 30)
        listening = subprocess.run(
            ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=False
        ).stdout
        if listening:  # ss may be missing; the server's own banner says the same
            assert f"127.0.0.1:{port}" in listening
            assert f"0.0.0.0:{port}" not in listening
        (healthcheck,) = instructions("HEALTHCHECK")
        probe = json.loads(healthcheck[healthcheck.index("CMD ") + 4 :])
        probe = [arg.replace(":8000/", f":{port}/") for arg in probe]
        probe[0] = sys.executable
        result = subprocess.run(probe, capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 0, result.stderr
        broken = subprocess.run(
            [*probe[:-1], probe[-1].replace("/healthz", "/nothing-here")],
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert broken.returncode != 0  # the probe does fail when the endpoint does
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert f"serving http://127.0.0.1:{port}/healthz" in stderr
    assert "warning" not in stderr  # no warning: loopback needs none
