"""What the user wrote: the manifest read into models, expanded into nodes and a graph."""
