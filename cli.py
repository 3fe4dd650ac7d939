"""Run the prism-agent CLI from a checkout: `python cli.py --help` (same app as the installed command)."""

from prism_agent.cli.app import main

if __name__ == "__main__":
    main()
