"""Terminal views of a run: the live dashboard (`prism-agent run` on a TTY)."""
