"""Model files: the project format, the authors' layouts, a restricted unpickler."""
