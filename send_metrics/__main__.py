"""Entry point for the console script and `python -m send_metrics`."""

import sys


def main() -> None:
    """Run the command line; `run` and `wrap` start their child before click is imported."""
    try:
        from send_metrics.run import fastpath

        fastpath.try_fast(sys.argv[1:])
        from send_metrics.cli import cli

        cli.main(prog_name="send_metrics")
    except KeyboardInterrupt:
        from send_metrics.errors import ExitCode  # not before a child starts: see fastpath

        sys.exit(ExitCode.INTERRUPTED)  # Ctrl-C before a child started, or in our own commands
    except BrokenPipeError:
        from send_metrics.output import closed_pipe

        closed_pipe()


if __name__ == "__main__":
    main()
