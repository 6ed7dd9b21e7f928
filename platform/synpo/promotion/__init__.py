"""The promotion job: evaluate a candidate version against the serving alias's holder, move the alias if it earns it."""
