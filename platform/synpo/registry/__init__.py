"""The MLflow model registry side: the captioner as an MLflow model, versions, aliases."""
