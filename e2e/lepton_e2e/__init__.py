"""The e2e harness: a real local Kubernetes built from Go modules, and a runner that
executes the product's pods as real processes. Test tooling only; never shipped."""
