"""The routes of the agent console and wallboard pages."""
