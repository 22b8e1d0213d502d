"""The register: gallery, classes, attendance, check-in, the admin passcode (imports the core only)."""
