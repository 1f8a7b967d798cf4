"""The main job: the offline tour runs every step as recorded, through the real client."""

from aiecs_llm.cli import demo_tour as demo
from aiecs_llm.cli.main import main


def test_demo_plays_every_step_as_recorded(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "did not behave as recorded" not in out
    assert out.count("[REPLAY]") == 12  # 4 steps for each of the 3 providers
    for error in ("RateLimitError (status 429, retry_after=7s)", "AuthenticationError"):
        assert out.count(error) == 3
    assert "Hello there,| how| are| you?|" in out


def test_demo_recordings_are_found():
    assert (demo.recordings_dir() / "openai" / "demo_conversation.yaml").is_file()
