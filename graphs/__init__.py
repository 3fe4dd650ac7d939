"""LangGraph graphs of prism-agent (shipped in the wheel as `prism_agent.graphs`)."""
