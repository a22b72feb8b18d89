"""``python -m assetbuild`` and the ``assetbuild`` command: a no-op ``build`` or ``check``
is answered from the project's stamp (run/stamp.py) before click or the library is
imported; everything else goes to the CLI."""

import sys


def main() -> None:
    from .run.stamp import replay

    answer = replay(sys.argv[1:])
    if answer is not None:
        code, text = answer
        sys.stdout.write(text)
        sys.stdout.flush()
        sys.exit(code)
    from .cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
