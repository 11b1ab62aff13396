"""SecOps AI: fine-tune, evaluate, serve and align security language models and agents, offline."""

__version__ = "0.1.0"
