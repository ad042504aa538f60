"""The operator's set-up jobs: preflight checks and provisioning."""
