"""Entry point for the console script and `python -m send_metrics`."""

import sys


def main() -> None:
    """Run the command line; `run` and `wrap` start their child before click is imported."""
    from send_metrics import fastpath

    code = fastpath.try_fast(sys.argv[1:])
    if code is None:
        from send_metrics.cli import cli

        cli.main(prog_name="send_metrics")
    else:
        sys.exit(code)


if __name__ == "__main__":
    main()
