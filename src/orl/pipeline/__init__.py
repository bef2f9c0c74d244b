"""`orl run`: the whole pipeline (stages 1-3, evaluation, report) with cached stages."""
