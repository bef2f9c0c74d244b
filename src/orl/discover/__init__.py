"""Stage 2 of ORL (sec. 3.1 (i)-(iii)): correspondence discovery and its store."""
