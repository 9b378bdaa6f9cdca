"""``python -m bigcomp``: the ``bigcomp`` command line."""

from bigcomp.cli import app

if __name__ == "__main__":
    app(prog_name="bigcomp")
