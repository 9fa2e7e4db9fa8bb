"""The simulation core: model, memory store, retrieval, memes, tracking, output."""
