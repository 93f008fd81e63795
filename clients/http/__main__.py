"""``python -m assistantd.http``: the same as the ``assistantd-http`` command."""

from .main import main

if __name__ == "__main__":
    main()
