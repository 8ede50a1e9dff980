"""Reading a built index: a loaded, checked index, and the live index a long-running process answers from."""
