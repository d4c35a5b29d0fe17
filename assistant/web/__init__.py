"""The web chat (Gradio): the page, its rendering, the saved transcript."""
