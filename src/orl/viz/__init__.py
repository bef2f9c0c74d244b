"""Pictures: RoI pair galleries (Figure 3), attention maps (Figure 4), the pipeline report."""
