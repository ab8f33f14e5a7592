"""Entry point for the console script and `python -m send_metrics`."""

import os
import sys


def main() -> None:
    """Run the command line; `run` and `wrap` start their child before click is imported."""
    from send_metrics import fastpath

    try:
        code = fastpath.try_fast(sys.argv[1:])
        if code is None:
            from send_metrics.cli import cli

            cli.main(prog_name="send_metrics")
        else:
            sys.exit(code)
    except KeyboardInterrupt:
        sys.exit(130)  # Ctrl-C before a child was started, or in a command of our own
    except BrokenPipeError:
        # `send_metrics schema | head`: the reader left; say nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)


if __name__ == "__main__":
    main()
