"""The Prismatic loop's library side: one round as idempotent steps over files in the run directory
(`steps.py`), what a round needs (`context.py`), and the runner that every entry point uses to run the loop
(`runner.py`, with `setup.py` for config and checks and `stop.py` for signals). The LangGraph graphs
(`graphs/prismatic.py`, `graphs/vanilla.py`) only sequence the steps."""
