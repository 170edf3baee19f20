"""Pure builders of the Kubernetes objects a decision becomes. No network."""
