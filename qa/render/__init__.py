"""Answers as output: plain text for the terminal, escaped HTML for the web chat."""
