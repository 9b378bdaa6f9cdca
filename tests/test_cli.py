from __future__ import annotations

from typer.testing import CliRunner

from bigcomp.cli import app


def test_help():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "demo" in result.output


def test_demo_small():
    result = CliRunner().invoke(app, ["demo", "--shape", "2,64,64"])
    assert result.exit_code == 0, result.output
    assert "lossless" in result.output
    assert "wnl q=1σ" in result.output
