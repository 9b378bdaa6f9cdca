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


def test_version_flag():
    import bigcomp

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"bigcomp {bigcomp.__version__}"


def test_help_keeps_the_extra_in_brackets():
    """rich markup used to eat "[inr]" from "needs bigcomp[inr]"."""
    result = CliRunner().invoke(app, ["compress", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "bigcomp[inr]" in result.output
