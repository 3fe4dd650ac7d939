"""The Prismatic loop's library side: one round as idempotent steps over files in the run directory.
The LangGraph graph (`graphs/prismatic.py`) only sequences them."""
