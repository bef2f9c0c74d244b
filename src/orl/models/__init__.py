"""Networks: backbone factory, MLP heads, the online/target pair and its EMA update."""
