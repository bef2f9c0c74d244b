"""Pictures: discovered RoI pair galleries (and, later, attention maps)."""
