"""The web chat: its settings, uploads into the seeds folder, and the Gradio app."""
