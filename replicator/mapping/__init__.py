"""The mapping language: model, transforms, router, links, check and explain."""
